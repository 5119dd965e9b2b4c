"""Item feature matrices for VBPR (He & McAuley 2016), row k = item k of the vocabulary.

- ``hm``: a visual feature from each article image, ``hm/images/<article_id>.jpg``: a joint
  RGB colour histogram (4 bins per channel = 64 values, L1-normalised) plus the mean colour,
  decoded at reduced size (JPEG draft mode). A cheap stand-in for the project's CNN features
  (``models/visual.py``); any ``[n_items, F]`` array can be passed instead. Articles without an
  image get a zero row.
- ``taobao`` at item level: no images or text exist; the item's category is its only content,
  encoded as a fixed random 32-d code per category (items of a category share it).
- ``taobao`` at category level: no content at all: ``None`` (VBPR then equals BPR-MF, and the
  result tables say so).
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from models.datasets import Vocabulary, hm_image_path, taobao_item_categories
from models.progress import progress as tqdm
from models.visual import colour_histogram

BINS = 4


def image_colour_features(path: os.PathLike[str] | str, bins: int = BINS) -> np.ndarray:
    """An image file's :func:`~models.visual.colour_histogram` (every pixel) followed by its
    mean RGB in [0, 1]."""
    with Image.open(path) as img:
        img.draft("RGB", (64, 64))
        rgb = np.asarray(img.convert("RGB").resize((48, 72)), dtype=np.float64) / 255.0
    pixels = rgb.reshape(-1, 3)
    return np.concatenate([colour_histogram(pixels, bins), pixels.mean(axis=0)])


def hm_features(vocab: Vocabulary, root: str | os.PathLike[str] | None = None,
                progress: bool = True) -> np.ndarray:
    feats = np.zeros((vocab.n_items, BINS ** 3 + 3), dtype=np.float32)
    for k, item in enumerate(tqdm(vocab.items, desc="hm image features", disable=not progress,
                                  leave=False)):
        path = hm_image_path(root, item)
        if path.is_file():
            try:
                feats[k] = image_colour_features(path)
            except (OSError, UnidentifiedImageError):
                continue  # an unreadable image is a missing image
    return feats


def taobao_category_codes(vocab: Vocabulary, root: str | os.PathLike[str] | None = None,
                          dim: int = 32, seed: int = 0) -> np.ndarray:
    categories = taobao_item_categories(root)
    cats = sorted({categories.get(i, "") for i in vocab.items})
    codes = np.random.default_rng(seed).normal(size=(len(cats), dim)).astype(np.float32)
    index = {c: k for k, c in enumerate(cats)}
    return codes[[index[categories.get(i, "")] for i in vocab.items]]


def item_features(dataset: str, level: str, vocab: Vocabulary,
                  root: str | os.PathLike[str] | None = None,
                  progress: bool = True) -> np.ndarray | None:
    """The VBPR feature matrix for a dataset/level, or None where no content exists."""
    if dataset == "hm":
        return hm_features(vocab, root, progress)
    if dataset == "taobao" and level == "item":
        return taobao_category_codes(vocab, root)
    return None


def describe(dataset: str, level: str) -> str:
    """One line for the result tables: what VBPR's item features were."""
    if dataset == "hm":
        return "VBPR features: 64-bin RGB histogram + mean colour of the article image"
    if dataset == "taobao" and level == "item":
        return "VBPR features: random 32-d code of the item's category (no images in Taobao)"
    return "VBPR features: none exist at Taobao category level, so VBPR = BPR-MF here"
