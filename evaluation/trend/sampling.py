"""The study's catalog: a seeded sample of fashion_products items with images, their stores
and their (garment-masked) pictures (paper 002 §3.1, §4.1)."""

from __future__ import annotations

import random
from pathlib import Path

from evaluation.trend.config import StudyError

MASTER_CATEGORIES = ("Apparel", "Footwear", "Accessories")


def select_items(data: Path, n: int, seed: int = 0) -> list:
    """A seeded sample of ``n`` fashion_products items with images (Apparel/Footwear/Acc.)."""
    from models.catalog_import import CatalogImportError, import_catalog

    try:
        report = import_catalog("fashion_products", data, with_images=True)
    except CatalogImportError as exc:
        raise StudyError(str(exc)) from exc
    pool = [i for i in report.items if i.extra.get("masterCategory") in MASTER_CATEGORIES]
    if len(pool) < n:
        raise StudyError(f"only {len(pool)} fashion_products items with images; asked for {n}")
    pool.sort(key=lambda item: int(item.item_id))
    return random.Random(seed).sample(pool, n)


def assign_stores(items: list, n_stores: int = 5, seed: int = 0) -> dict[str, tuple[float, float]]:
    """§3.2 / §4.1: every item in one of five stores at random coordinates."""
    from models.demo_catalog import make_stores

    rng = random.Random(seed)
    stores = make_stores(n_stores, rng)
    for item in items:
        item.store_id = rng.choice(stores).store_id
    return {s.store_id: (s.lat, s.lon) for s in stores}


def load_images(items: list, size: int, mask: bool) -> list:
    """RGB images at ``size``×``size``, garment-masked (§3.1) when ``mask``."""
    from PIL import Image

    from models.masking import apply_mask
    from models.visual import load_image

    out = []
    for item in items:
        image = load_image(item.image)
        if mask:
            image = apply_mask(image)
        out.append(image.resize((size, size), Image.Resampling.BILINEAR))
    return out
