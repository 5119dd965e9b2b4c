"""Import the public catalogs of ``STYLESTREAM_DATA`` into the shared catalog layout.

Two sources (layout in ``docs/data.md``):

- ``fashion_products`` (Kaggle "Fashion Product Images (Small)", ``styles.csv``):
  ``category = articleType``; ``group = subCategory`` — the coarse level paper 002 §3.4 groups
  by ("Topwear", "Bottomwear", "Shoes", ...); we fall back to ``masterCategory`` when
  ``subCategory`` is empty. ``gender``, ``colour = baseColour``, ``title = productDisplayName``;
  season/year/usage/masterCategory go to ``extra``.
- ``hm`` (H&M, ``articles.csv``): ``title = prod_name``, ``category = product_type_name``,
  ``group = garment_group_name`` (falls back to ``product_group_name`` when that is
  "Unknown"/empty), ``colour = colour_group_name``, ``description = detail_desc``; gender from
  ``index_group_name`` / ``index_name`` (see :func:`hm_gender`); ``article_id`` zero-padded to 10
  digits.

Images are referenced by **absolute path** to ``<data>/<set>/images/<id>.jpg`` (never copied:
the data must not end up in the repository); ``CatalogItem.image`` is then absolute, which
``Path(catalog_dir) / image`` resolves unchanged. Rows that cannot be read (missing id, title or
category) are skipped and counted in :class:`ImportReport`, and one warning is logged.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from models.catalog import CatalogItem

log = logging.getLogger(__name__)

SOURCES: tuple[str, ...] = ("fashion_products", "hm")


class CatalogImportError(ValueError):
    """The source directory or file is missing or not the expected layout."""


@dataclass
class ImportReport:
    """What an import read: items kept, rows skipped (with the first few reasons)."""

    source: str
    items: list[CatalogItem] = field(default_factory=list)
    rows: int = 0
    skipped: int = 0
    without_image: int = 0
    reasons: list[str] = field(default_factory=list)

    def skip(self, line: int, reason: str) -> None:
        self.skipped += 1
        if len(self.reasons) < 10:
            self.reasons.append(f"line {line}: {reason}")


def hm_gender(index_group: str, index_name: str = "", section: str = "") -> str:
    """H&M's store sections → gender: Ladieswear → Women, Menswear → Men, Baby/Children →
    Boys/Girls when the index or section name says so ("Kids Girl", "Baby Boy"), else Unisex;
    Divided (the teen line) and Sport → Unisex. Lingerie and ladies' accessories → Women."""
    group = index_group.strip().lower()
    name = f"{index_name} {section}".strip().lower()
    if group == "ladieswear" or name.startswith(("ladies", "lingeries")):
        return "Women"
    if group == "menswear" or name.startswith("men"):
        return "Men"
    if "children" in group or "baby" in group:
        if "girl" in name:
            return "Girls"
        if "boy" in name:
            return "Boys"
        return "Unisex"
    return "Unisex"


def _image_path(images: Path, stem: str) -> str | None:
    """The absolute path of an item's picture inside ``images``; ``None`` when it is missing or
    a symbolic link leads out of ``images`` (never trusted as a catalog image root)."""
    path = images / f"{stem}.jpg"
    if not path.exists():
        return None
    resolved, root = path.resolve(), images.resolve()
    if root not in resolved.parents:
        log.warning("image %s leads outside %s; item kept without image", path, images)
        return None
    return str(resolved)


def _read_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    if not path.exists():
        raise CatalogImportError(f"{path} not found: point --data / STYLESTREAM_DATA at the "
                                 "data directory (layout: docs/data.md)")
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise CatalogImportError(f"{path}: missing columns {missing}")
        for row in reader:
            # line_num counts physical lines, so quoted multi-line fields keep numbers honest
            yield reader.line_num, row


def _fashion_item(row: dict[str, str | None], images: Path) -> CatalogItem:
    item_id = (row.get("id") or "").strip()
    title = (row.get("productDisplayName") or "").strip()
    category = (row.get("articleType") or "").strip()
    if not item_id.isdigit():
        raise ValueError(f"bad id {item_id!r}")
    if not title or not category:
        raise ValueError("empty productDisplayName or articleType")
    group = (row.get("subCategory") or "").strip() or (row.get("masterCategory") or "").strip()
    extra = {k: (row.get(k) or "").strip() for k in ("masterCategory", "season", "year", "usage")
             if (row.get(k) or "").strip()}
    return CatalogItem(item_id=item_id, title=title, category=category, group=group,
                       gender=(row.get("gender") or "").strip() or "Unisex",
                       colour=(row.get("baseColour") or "").strip(),
                       image=_image_path(images, item_id), extra=extra)


def _hm_item(row: dict[str, str | None], images: Path) -> CatalogItem:
    raw_id = (row.get("article_id") or "").strip()
    if not raw_id.isdigit():
        raise ValueError(f"bad article_id {raw_id!r}")
    item_id = raw_id.zfill(10)
    title = (row.get("prod_name") or "").strip()
    category = (row.get("product_type_name") or "").strip()
    if not title or not category:
        raise ValueError("empty prod_name or product_type_name")
    group = (row.get("garment_group_name") or "").strip()
    if group in ("", "Unknown"):
        group = (row.get("product_group_name") or "").strip() or "Unknown"
    extra = {k: (row.get(k) or "").strip()
             for k in ("product_group_name", "department_name", "index_name",
                       "graphical_appearance_name")
             if (row.get(k) or "").strip()}
    return CatalogItem(item_id=item_id, title=title, category=category, group=group,
                       gender=hm_gender(row.get("index_group_name") or "",
                                        row.get("index_name") or "",
                                        row.get("section_name") or ""),
                       colour=(row.get("colour_group_name") or "").strip(),
                       description=(row.get("detail_desc") or "").strip(),
                       image=_image_path(images, item_id), extra=extra)


_LAYOUT: dict[str, tuple[str, tuple[str, ...],
                         Callable[[dict[str, str | None], Path], CatalogItem]]] = {
    "fashion_products": ("styles.csv", ("id", "articleType", "productDisplayName"),
                         _fashion_item),
    "hm": ("articles.csv", ("article_id", "prod_name", "product_type_name"), _hm_item),
}


def import_catalog(source: str, data_dir: str | Path, limit: int | None = None,
                   with_images: bool = False) -> ImportReport:
    """Read ``<data_dir>/<source>/`` into catalog items.

    ``data_dir`` may be the data root (holding ``fashion_products/``, ``hm/``) or the source's
    own directory. ``limit`` caps the number of items kept (after the image filter);
    ``with_images`` keeps only items whose image file exists."""
    if source not in _LAYOUT:
        raise CatalogImportError(f"unknown source {source!r}; expected one of {SOURCES}")
    if limit is not None and limit < 1:
        raise CatalogImportError("limit must be >= 1")
    file_name, required, convert = _LAYOUT[source]
    root = Path(data_dir)
    base = root / source if (root / source / file_name).exists() else root
    images = base / "images"
    report = ImportReport(source=source)
    seen: set[str] = set()
    for line, row in _read_rows(base / file_name, required):
        report.rows += 1
        try:
            item = convert(row, images)
        except ValueError as exc:
            report.skip(line, str(exc))
            continue
        if item.item_id in seen:
            report.skip(line, f"duplicate id {item.item_id}")
            continue
        if item.image is None:
            report.without_image += 1
            if with_images:
                continue
        seen.add(item.item_id)
        report.items.append(item)
        if limit is not None and len(report.items) >= limit:
            break
    if report.skipped:
        log.warning("%s: skipped %d of %d rows (first: %s)", source, report.skipped,
                    report.rows, "; ".join(report.reasons[:3]))
    return report
