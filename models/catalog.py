"""Catalog records shared by feature extraction, the rerank rules and the demo.

A catalog is a directory holding ``catalog.jsonl`` (one :class:`CatalogItem` per line) and the
item images it names (relative paths). The demo generates one; ``fashion_products`` and ``hm``
import into the same layout, so every later stage reads one format.

Image paths never leave the catalog: :func:`resolve_image` accepts a relative path without
``..`` that resolves (symlinks followed) inside the catalog directory, or an absolute path inside
the catalog directory or one of its *image roots* — directories :func:`save_catalog` declares in
``image_roots.json`` for imported catalogs whose pictures stay in the data directory. Anything
else raises :class:`UnsafeImagePath` with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath, PureWindowsPath

CATALOG_FILE = "catalog.jsonl"
#: Directories outside the catalog that its (absolute) image paths may point into.
IMAGE_ROOTS_FILE = "image_roots.json"


class UnsafeImagePath(ValueError):
    """An item image path that is malformed or would escape the catalog directory."""


def image_path_problem(image: str, allow_absolute: bool = False) -> str | None:
    """Why ``image`` cannot name a picture relative to a catalog directory (``None``: it can).

    Purely textual: absolute paths (POSIX or Windows; unless ``allow_absolute``, when the caller
    checks them with :func:`resolve_image`), ``..`` components, control characters."""
    if not image or not image.isprintable():
        return "image path is empty or contains control characters"
    if not allow_absolute and (PurePosixPath(image).is_absolute()
                               or PureWindowsPath(image).anchor):
        return f"image path {image[:80]!r} is absolute; give it relative to the catalog"
    if ".." in PurePosixPath(image.replace("\\", "/")).parts:
        return f"image path {image[:80]!r} climbs out of the catalog with '..'"
    return None


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def resolve_image(catalog_dir: str | Path, image: str, roots: Sequence[str | Path] = ()) -> Path:
    """The file ``image`` names, guaranteed inside ``catalog_dir`` (or, for an absolute path,
    inside one of ``roots``), symlinks followed; :class:`UnsafeImagePath` otherwise. The file
    need not exist."""
    base = Path(catalog_dir).resolve()
    if Path(image).is_absolute() and image.isprintable():
        target = Path(image).resolve()
        if any(_inside(target, Path(root).resolve()) for root in [base, *roots]):
            return target
        raise UnsafeImagePath(f"image path {image[:80]!r} is absolute and outside the "
                              "catalog directory and its image roots")
    problem = image_path_problem(image)
    if problem:
        raise UnsafeImagePath(problem)
    target = (base / image).resolve()
    if not _inside(target, base):
        raise UnsafeImagePath(f"image path {image[:80]!r} leads outside the catalog directory "
                              "(through a symbolic link)")
    return target


def image_roots(directory: str | Path) -> list[Path]:
    """The image roots a catalog declares (empty when it has no ``image_roots.json``)."""
    path = Path(directory) / IMAGE_ROOTS_FILE
    if not path.exists():
        return []
    return [Path(root) for root in json.loads(path.read_text(encoding="utf-8"))]


@dataclass
class CatalogItem:
    """One product. ``category`` is the fine type (articleType, e.g. "Tshirts"); ``group`` the
    coarse semantic group used by paper 002 §3.4 (e.g. "Topwear"). ``image`` is relative to the
    catalog directory, or ``None`` when the item has no picture."""

    item_id: str
    title: str
    category: str
    group: str
    gender: str = "Unisex"
    colour: str = ""
    description: str = ""
    image: str | None = None
    store_id: str | None = None
    price: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict) -> CatalogItem:
        known = {f.name for f in fields(cls)}
        item = cls(**{k: v for k, v in data.items() if k in known})
        item.item_id = str(item.item_id)
        return item

    def text(self) -> str:
        """The text the text encoder reads: title, then description."""
        return f"{self.title}. {self.description}".strip(". ") if self.description else self.title


def save_catalog(directory: str | Path, items: Iterable[CatalogItem]) -> Path:
    """Write ``catalog.jsonl``; the folders of absolute image paths (an import from the data
    directory) become the catalog's declared image roots (``image_roots.json``)."""
    path = Path(directory) / CATALOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    roots: set[str] = set()
    with path.open("w", encoding="utf-8") as out:
        for item in items:
            if item.image and Path(item.image).is_absolute():
                roots.add(str(Path(item.image).parent.resolve()))
            out.write(json.dumps(asdict(item), ensure_ascii=False) + "\n")
    roots_file = path.parent / IMAGE_ROOTS_FILE
    if roots:
        roots_file.write_text(json.dumps(sorted(roots)), encoding="utf-8")
    else:
        roots_file.unlink(missing_ok=True)
    return path


def iter_catalog(directory: str | Path) -> Iterator[CatalogItem]:
    path = Path(directory) / CATALOG_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"no {CATALOG_FILE} in {directory}: run `stylestream catalog` first")
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield CatalogItem.from_dict(json.loads(line))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: bad catalog record: {exc}") from exc


def load_catalog(directory: str | Path) -> dict[str, CatalogItem]:
    return {item.item_id: item for item in iter_catalog(directory)}
