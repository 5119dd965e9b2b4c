"""Catalog records shared by feature extraction, the rerank rules and the demo.

A catalog is a directory holding ``catalog.jsonl`` (one :class:`CatalogItem` per line) and the
item images it names (relative paths). The demo generates one; ``fashion_products`` and ``hm``
import into the same layout, so every later stage reads one format.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

CATALOG_FILE = "catalog.jsonl"


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
    path = Path(directory) / CATALOG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(asdict(item), ensure_ascii=False) + "\n")
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
