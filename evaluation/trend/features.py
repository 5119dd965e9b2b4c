"""Item vectors per backbone: CNN penultimate-layer features or a garment colour histogram,
mean-centred over the catalog."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluation.trend.config import TrendStudyConfig


def garment_histogram(image, bins: int = 4) -> np.ndarray:
    """:func:`~models.visual.colour_histogram` of the non-white (garment) pixels."""
    from models.visual import colour_histogram

    rgb = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3) / 255.0
    garment = rgb[(rgb < 0.97).any(axis=1)]
    return colour_histogram(garment if len(garment) else rgb, bins).astype(np.float32)


def cnn_features(name: str, images: list, image_size: int, weights_dir: Path | None,
                 progress: bool) -> np.ndarray:
    """Penultimate-layer (GAP of the last feature map) features of one backbone."""
    import torch

    from models.progress import progress as tqdm
    from models.visual import build_backbone, images_to_batch, preprocess

    weights: str | Path | None = None
    if name == "efficientnet_lite0":
        weights = "imagenet"
    elif weights_dir is not None and (weights_dir / f"{name}.pth").is_file():
        weights = weights_dir / f"{name}.pth"
    torch.manual_seed(0)
    net = build_backbone(name, weights).eval()
    transform = preprocess("paper", image_size)
    chunks = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(images), 16), desc=f"{name} features",
                          disable=not progress, leave=False):
            batch = images_to_batch(images[start:start + 16], transform)
            chunks.append(net(batch).mean(dim=(2, 3)).float().numpy())
    return np.concatenate(chunks)


def extract_vectors(backbone: str, items: list, images: list, cfg: TrendStudyConfig
                    ) -> dict[str, np.ndarray]:
    """``{item_id: vector}``, mean-centred over the catalog (see the module docstring)."""
    if backbone == "histogram":
        matrix = np.stack([garment_histogram(image) for image in images])
    else:
        matrix = cnn_features(backbone, images, cfg.image_size, cfg.weights_dir, cfg.progress)
    matrix = matrix - matrix.mean(axis=0, keepdims=True)
    return {item.item_id: row for item, row in zip(items, matrix, strict=True)}
