"""A toy problem the fusion network can learn from features (shared by training and serving
tests; the trained network itself is conftest's ``trained`` fixture)."""

from __future__ import annotations

import torch

from models.fusion import FusionConfig, ItemFeatures

SMALL = FusionConfig(token_dim=32, visual_hidden=32, heads=4, head_dim=8, user_dim=8, hidden=32)


def toy_problem(n_items: int = 40, n_users: int = 24, seed: int = 0,
                ) -> tuple[dict[str, dict[str, float]], ItemFeatures]:
    """Two styles of items (visual direction ±); each user scores every item of one style,
    2 when the item's second visual feature is positive, else 1: learnable from features."""
    g = torch.Generator().manual_seed(seed)
    style = torch.arange(n_items) % 2
    visual = torch.randn(n_items, 16, generator=g) * 0.3
    visual[:, 0] += style * 2.0 - 1.0
    text = torch.randn(n_items, 12, generator=g)
    features = ItemFeatures([f"i{k}" for k in range(n_items)], visual, text,
                            torch.ones(n_items, dtype=torch.bool))
    matrix = {f"u{u}": {f"i{k}": 2.0 if visual[k, 1] > 0 else 1.0
                        for k in range(n_items) if style[k] == u % 2}
              for u in range(n_users)}
    return matrix, features


def run_bench_rerank(*options: str) -> int:
    """``stylestream bench rerank`` through its own argument parser; its exit code."""
    import argparse

    from scripts import bench_rerank

    parser = argparse.ArgumentParser()
    bench_rerank.register(parser.add_subparsers())
    args = parser.parse_args(["rerank", *options])
    return args.func(args)


#: the bench at a size that runs in well under a second on a CPU (add --items, --candidates)
TINY_BENCH = ("--shoppers", "3", "--history", "4", "--seconds", "0.01", "--device", "cpu")


def tiny_extract(batch_size: int):
    """The smallest real extractor setting (pretrained EfficientNet-Lite0 on 64-pixel images):
    what the feature-store and onboarding tests encode with."""
    from models.feature_store import ExtractConfig

    return ExtractConfig(backbone="efficientnet_lite0", weights="imagenet", image_size=64,
                         batch_size=batch_size)
