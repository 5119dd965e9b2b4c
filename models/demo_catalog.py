"""The project's own demo catalog: procedurally drawn garments in stores with coordinates.

Paper 002 §3.2 assigns every item to one of a few synthetic stores "uniformly distributed across
a geographical space", each with random (latitude, longitude); §4.1 uses five stores. This module
does the same for a catalog it draws itself with PIL, so the demo needs no downloaded data:
each item is a 224×224 JPEG of a garment silhouette (t-shirt, shirt, dress, trousers, jeans,
skirt, shoes, sneakers, bag, cap, hat, jacket) filled with a named colour and a pattern (plain,
stripes or dots), with gender, fine category, coarse group, colour, title, description, store and
price. Everything is drawn from one ``random.Random(seed)``, so a seed gives the same catalog
(records and image bytes) every time.

The catalog directory is the shared layout of :mod:`models.catalog` (``catalog.jsonl`` + images)
plus ``stores.json`` (a list of ``{"store_id", "name", "lat", "lon"}``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

from models.catalog import CatalogItem, save_catalog

STORES_FILE = "stores.json"
IMAGE_SIZE = 224

#: Named colours (RGB) the garments are filled with; the name goes into title and ``colour``.
COLOURS: dict[str, tuple[int, int, int]] = {
    "Red": (200, 30, 40), "Navy Blue": (25, 35, 90), "Blue": (40, 100, 200),
    "Black": (25, 25, 25), "White": (245, 245, 240), "Grey": (128, 128, 128),
    "Green": (40, 140, 60), "Yellow": (235, 200, 40), "Pink": (235, 130, 170),
    "Beige": (215, 195, 160), "Brown": (110, 70, 40), "Purple": (110, 50, 140),
}

PATTERNS: tuple[str, ...] = ("plain", "stripes", "dots")
_PATTERN_WORD = {"plain": "", "stripes": "Striped", "dots": "Polka Dot"}


@dataclass(frozen=True)
class Store:
    """A synthetic store (paper 002 §3.2): id, display name and coordinates in degrees."""

    store_id: str
    name: str
    lat: float
    lon: float


Shape = Callable[[ImageDraw.ImageDraw], None]


def _tshirt(d: ImageDraw.ImageDraw) -> None:
    d.polygon([(62, 40), (92, 32), (112, 48), (132, 32), (162, 40), (200, 80), (176, 102),
               (160, 90), (160, 192), (64, 192), (64, 90), (48, 102), (24, 80)], fill=255)


def _shirt(d: ImageDraw.ImageDraw) -> None:
    d.polygon([(70, 36), (98, 28), (112, 44), (126, 28), (154, 36), (178, 60), (196, 190),
               (172, 194), (158, 96), (158, 200), (66, 200), (66, 96), (52, 194), (28, 190),
               (46, 60)], fill=255)


def _dress(d: ImageDraw.ImageDraw) -> None:
    d.polygon([(88, 24), (100, 24), (112, 40), (124, 24), (136, 24), (144, 70), (136, 100),
               (186, 204), (38, 204), (88, 100), (80, 70)], fill=255)


def _trousers(d: ImageDraw.ImageDraw) -> None:
    d.polygon([(70, 24), (154, 24), (168, 204), (126, 204), (112, 84), (98, 204), (56, 204)],
              fill=255)


def _jeans(d: ImageDraw.ImageDraw) -> None:
    _trousers(d)
    d.line([(70, 38), (154, 38)], fill=0, width=2)          # waistband seam
    d.arc((66, 30, 100, 70), start=0, end=90, fill=0, width=2)    # front pockets
    d.arc((124, 30, 158, 70), start=90, end=180, fill=0, width=2)


def _skirt(d: ImageDraw.ImageDraw) -> None:
    d.polygon([(78, 50), (146, 50), (150, 64), (190, 176), (34, 176), (74, 64)], fill=255)


def _shoes(d: ImageDraw.ImageDraw) -> None:
    d.polygon([(30, 150), (30, 104), (74, 100), (96, 128), (150, 136), (194, 150), (194, 172),
               (30, 172)], fill=255)


def _sneakers(d: ImageDraw.ImageDraw) -> None:
    d.rounded_rectangle((24, 96, 200, 172), radius=30, fill=255)
    d.rectangle((24, 150, 200, 176), fill=255)


def _bag(d: ImageDraw.ImageDraw) -> None:
    d.rounded_rectangle((44, 88, 180, 196), radius=14, fill=255)
    d.arc((70, 36, 154, 124), start=180, end=360, fill=255, width=10)


def _cap(d: ImageDraw.ImageDraw) -> None:
    d.pieslice((48, 64, 176, 192), start=180, end=360, fill=255)
    d.polygon([(160, 120), (208, 132), (200, 142), (150, 134)], fill=255)
    d.rectangle((48, 124, 176, 136), fill=255)


def _hat(d: ImageDraw.ImageDraw) -> None:
    d.ellipse((20, 128, 204, 168), fill=255)
    d.rounded_rectangle((66, 60, 158, 150), radius=18, fill=255)


def _jacket(d: ImageDraw.ImageDraw) -> None:
    d.polygon([(72, 28), (112, 40), (152, 28), (184, 52), (204, 196), (176, 200), (164, 100),
               (164, 204), (60, 204), (60, 100), (48, 200), (20, 196), (40, 52)], fill=255)
    d.line([(112, 40), (112, 204)], fill=0, width=3)


@dataclass(frozen=True)
class Kind:
    """One fine category of the demo: silhouette, coarse group, genders it is sold for, price
    range, the noun of its title and (optionally) the colours it comes in."""

    category: str
    group: str
    shape: Shape
    genders: tuple[str, ...]
    price: tuple[float, float]
    noun: str
    colours: tuple[str, ...] = ()  #: restrict the palette (empty: any colour)


#: The demo's fine categories; groups follow the coarse groups of paper 002 §3.4.
KINDS: tuple[Kind, ...] = (
    Kind("Tshirts", "Topwear", _tshirt, ("Men", "Women", "Unisex"), (9, 30), "T-shirt"),
    Kind("Shirts", "Topwear", _shirt, ("Men", "Women"), (19, 60), "Shirt"),
    Kind("Dresses", "Dress", _dress, ("Women",), (25, 120), "Dress"),
    Kind("Trousers", "Bottomwear", _trousers, ("Men", "Women"), (25, 80), "Trousers"),
    Kind("Jeans", "Bottomwear", _jeans, ("Men", "Women", "Unisex"), (30, 100), "Jeans",
         ("Blue", "Navy Blue", "Black", "Grey")),
    Kind("Skirts", "Bottomwear", _skirt, ("Women",), (19, 70), "Skirt"),
    Kind("Shoes", "Footwear", _shoes, ("Men", "Women"), (40, 160), "Shoes"),
    Kind("Sneakers", "Footwear", _sneakers, ("Men", "Women", "Unisex"), (35, 140), "Sneakers"),
    Kind("Bags", "Accessories", _bag, ("Women", "Unisex"), (20, 200), "Bag"),
    Kind("Caps", "Accessories", _cap, ("Men", "Unisex"), (8, 30), "Cap"),
    Kind("Hats", "Accessories", _hat, ("Women", "Unisex"), (12, 60), "Hat"),
    Kind("Jackets", "Outerwear", _jacket, ("Men", "Women", "Unisex"), (45, 250), "Jacket"),
)


def make_stores(n_stores: int, rng: random.Random, center: tuple[float, float] = (48.8566, 2.3522),
                spread_deg: float = 0.15) -> list[Store]:
    """Stores at uniform random coordinates in a box around ``center`` (paper 002 §3.2).

    The paper's "geographical space" is unspecified; we use a city-sized box (±0.15° ≈ ±17 km
    north–south) around Paris so distances read like store distances (a few km)."""
    if n_stores < 1:
        raise ValueError("n_stores must be >= 1")
    lat0, lon0 = center
    return [Store(f"store-{k}", f"Store {k}",
                  round(lat0 + rng.uniform(-spread_deg, spread_deg), 6),
                  round(lon0 + rng.uniform(-spread_deg, spread_deg), 6))
            for k in range(1, n_stores + 1)]


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, int(c * factor))) for c in rgb)  # type: ignore[return-value]


def draw_garment(kind: Kind, rgb: tuple[int, int, int], pattern: str,
                 rng: random.Random) -> Image.Image:
    """A 224×224 RGB picture: light background, the silhouette filled with colour + pattern."""
    background = tuple(rng.randint(232, 250) for _ in range(3))
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), background)  # type: ignore[arg-type]
    mask = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    kind.shape(ImageDraw.Draw(mask))
    fill = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), rgb)
    accent = _shade(rgb, 0.55) if sum(rgb) > 300 else _shade((255, 255, 255), 0.92)
    paint = ImageDraw.Draw(fill)
    if pattern == "stripes":
        width = rng.randint(6, 14)
        for y in range(0, IMAGE_SIZE, 2 * width):
            paint.rectangle((0, y, IMAGE_SIZE, y + width - 1), fill=accent)
    elif pattern == "dots":
        step, radius = rng.randint(18, 28), rng.randint(3, 6)
        for y in range(step // 2, IMAGE_SIZE, step):
            for x in range(step // 2, IMAGE_SIZE, step):
                paint.ellipse((x - radius, y - radius, x + radius, y + radius), fill=accent)
    elif pattern != "plain":
        raise ValueError(f"unknown pattern {pattern!r}; expected one of {PATTERNS}")
    image.paste(fill, (0, 0), mask)
    edges = mask.filter(ImageFilter.FIND_EDGES)
    image.paste(_shade(rgb, 0.45), (0, 0), edges)
    return image


def _title(gender: str, colour: str, pattern: str, noun: str) -> str:
    return " ".join(w for w in (gender, colour, _PATTERN_WORD[pattern], noun) if w)


def generate_demo_catalog(out_dir: str | Path, n_items: int = 300, n_stores: int = 5,
                          seed: int = 0) -> list[CatalogItem]:
    """Draw ``n_items`` garments into ``out_dir`` (images/, catalog.jsonl, stores.json).

    Deterministic for a given ``seed``: the same records and the same JPEG bytes."""
    if n_items < 1:
        raise ValueError("n_items must be >= 1")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    stores = make_stores(n_stores, rng)
    items: list[CatalogItem] = []
    colour_names = sorted(COLOURS)
    for index in range(n_items):
        kind = KINDS[index % len(KINDS)] if index < len(KINDS) else rng.choice(KINDS)
        gender = rng.choice(kind.genders)
        colour = rng.choice(kind.colours or colour_names)
        pattern = rng.choices(PATTERNS, weights=(0.5, 0.3, 0.2))[0]
        store = rng.choice(stores)
        price = round(rng.uniform(*kind.price), 2)
        item_id = f"D{index:05d}"
        image_rel = f"images/{item_id}.jpg"
        draw_garment(kind, COLOURS[colour], pattern, rng).save(out / image_rel, "JPEG",
                                                               quality=90)
        title = _title(gender, colour, pattern, kind.noun)
        look = f"{_PATTERN_WORD[pattern].lower()} " if pattern != "plain" else ""
        description = (f"A {look}{colour.lower()} {kind.noun.lower()} for "
                       f"{'everyone' if gender == 'Unisex' else gender.lower()}, "
                       f"sold at {store.name}.")
        items.append(CatalogItem(item_id=item_id, title=title, category=kind.category,
                                 group=kind.group, gender=gender, colour=colour,
                                 description=description, image=image_rel,
                                 store_id=store.store_id, price=price,
                                 extra={"pattern": pattern}))
    save_catalog(out, items)
    save_stores(out, stores)
    return items


def save_stores(directory: str | Path, stores: list[Store]) -> Path:
    path = Path(directory) / STORES_FILE
    path.write_text(json.dumps([asdict(s) for s in stores], indent=2), encoding="utf-8")
    return path


def load_stores(directory: str | Path) -> dict[str, Store]:
    """``stores.json`` of a catalog directory as ``{store_id: Store}`` (empty if absent)."""
    path = Path(directory) / STORES_FILE
    if not path.exists():
        return {}
    try:
        return {s["store_id"]: Store(str(s["store_id"]), str(s.get("name", s["store_id"])),
                                     float(s["lat"]), float(s["lon"]))
                for s in json.loads(path.read_text(encoding="utf-8"))}
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: bad store list: {exc}") from exc


def load_store_coords(directory: str | Path) -> dict[str, tuple[float, float]]:
    """``{store_id: (lat, lon)}`` of a catalog directory — what :class:`RuleScorer` and
    :class:`models.simulation.ShopperSimulator` take as ``stores``."""
    return {k: (s.lat, s.lon) for k, s in load_stores(directory).items()}
