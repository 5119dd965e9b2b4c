"""Importers of the real public catalogs (docs/data.md), read from STYLESTREAM_DATA."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.catalog import load_catalog
from models.catalog_import import CatalogImportError, hm_gender, import_catalog
from scripts.cli import main


def test_fashion_products_fields(data_dir: Path) -> None:
    report = import_catalog("fashion_products", data_dir, limit=50)
    assert len(report.items) == 50
    first = report.items[0]
    assert (first.item_id, first.category, first.group, first.gender, first.colour) == (
        "15970", "Shirts", "Topwear", "Men", "Navy Blue")
    assert first.title == "Turtle Check Men Navy Blue Shirt"
    for item in report.items:
        if item.image is not None:
            assert Path(item.image).is_absolute() and Path(item.image).exists()


def test_with_images_keeps_only_pictured(data_dir: Path) -> None:
    report = import_catalog("fashion_products", data_dir, limit=20, with_images=True)
    assert len(report.items) == 20
    assert all(item.image and Path(item.image).exists() for item in report.items)
    assert report.without_image > 0  # the small set has images for a fifth of the rows


def test_hm_fields(data_dir: Path) -> None:
    report = import_catalog("hm", data_dir / "hm", limit=30, with_images=True)
    assert len(report.items) == 30
    for item in report.items:
        assert len(item.item_id) == 10 and item.item_id.isdigit()
        assert item.gender in ("Men", "Women", "Unisex", "Boys", "Girls")
        assert Path(item.image).name == f"{item.item_id}.jpg"
    assert report.items[0].title == "20 den 1p Stockings"
    assert report.items[0].gender == "Women"


def test_hm_gender_mapping() -> None:
    assert hm_gender("Ladieswear") == "Women"
    assert hm_gender("Menswear", "Menswear") == "Men"
    assert hm_gender("Divided", "Divided") == "Unisex"
    assert hm_gender("Baby/Children", "Children Sizes 92-140", "Kids Girl") == "Girls"
    assert hm_gender("Baby/Children", "Baby Sizes 50-98", "Baby Boy") == "Boys"
    assert hm_gender("Baby/Children", "Baby Sizes 50-98", "Baby Essentials") == "Unisex"


def test_bad_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    (tmp_path / "styles.csv").write_text(
        "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,"
        "productDisplayName\n"
        "1,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Red Tee\n"
        "x,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Bad Id\n"
        "2,Women,Apparel,,Skirts,Blue,Summer,2012,Casual,\n"
        "3,Women,Apparel,,Skirts,Blue,Summer,2012,Casual,Blue Skirt\n", encoding="utf-8")
    report = import_catalog("fashion_products", tmp_path)
    assert [i.item_id for i in report.items] == ["1", "3"]
    assert report.skipped == 2 and report.rows == 4
    assert report.items[1].group == "Apparel"  # subCategory empty → masterCategory


def test_missing_source_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogImportError, match="not found"):
        import_catalog("hm", tmp_path)
    with pytest.raises(CatalogImportError, match="unknown source"):
        import_catalog("amazon", tmp_path)


def test_cli_import(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cat"
    assert main(["catalog", "--out", str(out), "--import", "hm", "--data", str(data_dir),
                 "--limit", "7"]) == 0
    assert len(load_catalog(out)) == 7
    assert main(["catalog", "--out", str(out), "--import", "hm", "--data",
                 str(tmp_path / "none")]) == 2
