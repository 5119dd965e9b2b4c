"""Demo catalog (paper 002 §3.2): deterministic, complete file layout, stores with coordinates."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image

from models.catalog import load_catalog
from models.demo_catalog import KINDS, generate_demo_catalog, load_store_coords, load_stores
from scripts.cli import main


def _digest(directory: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = generate_demo_catalog(tmp_path / "a", n_items=24, seed=3)
    b = generate_demo_catalog(tmp_path / "b", n_items=24, seed=3)
    c = generate_demo_catalog(tmp_path / "c", n_items=24, seed=4)
    assert a == b
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    assert [i.title for i in a] != [i.title for i in c]


def test_layout_records_and_images(tmp_path: Path) -> None:
    items = generate_demo_catalog(tmp_path, n_items=30, n_stores=4, seed=1)
    loaded = load_catalog(tmp_path)
    assert list(loaded) == [i.item_id for i in items]
    stores = load_stores(tmp_path)
    assert len(stores) == 4
    assert {i.store_id for i in items} <= set(stores)
    assert {i.category for i in items} == {k.category for k in KINDS}  # every kind drawn
    for item in items:
        assert item.gender in ("Men", "Women", "Unisex")
        assert item.group in ("Topwear", "Bottomwear", "Dress", "Footwear", "Accessories",
                              "Outerwear")
        assert item.colour in item.title and item.title.startswith(item.gender)
        assert item.price is not None and item.price > 0
        with Image.open(tmp_path / item.image) as image:
            assert image.size == (224, 224) and image.format == "JPEG"
    for store in stores.values():
        assert -90 <= store.lat <= 90 and -180 <= store.lon <= 180
    assert load_store_coords(tmp_path) == {k: (s.lat, s.lon) for k, s in stores.items()}
    assert load_store_coords(tmp_path / "nowhere") == {}


def test_garment_differs_from_background(tmp_path: Path) -> None:
    item = generate_demo_catalog(tmp_path, n_items=1, seed=0)[0]
    with Image.open(tmp_path / item.image) as image:
        corner = image.getpixel((2, 2))
        centre = image.getpixel((112, 130))
    assert sum(abs(a - b) for a, b in zip(corner, centre, strict=True)) > 30


def test_cli_demo_and_bad_arguments(tmp_path: Path, capsys) -> None:
    assert main(["catalog", "--out", str(tmp_path / "cat"), "--demo", "--items", "5"]) == 0
    assert len(load_catalog(tmp_path / "cat")) == 5
    assert main(["catalog", "--out", str(tmp_path / "x"), "--items", "0"]) == 2
    assert "--items" in capsys.readouterr().err
