"""The study's report: markdown tables, the paper's numbers for reference, and the plots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from evaluation.trend.config import BACKBONE_LABELS
from evaluation.trend.metrics import METRICS


def _cell(value: tuple[float, float]) -> str:
    mean, half = value
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.2f}" if math.isnan(half) else f"{mean:.2f} ± {half:.2f}"


def markdown_table(title: str, rows: dict[str, dict[str, tuple[float, float]]],
                   first: str) -> str:
    columns = list(METRICS)
    lines = [f"### {title}", "", f"| {first} | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for label, values in rows.items():
        lines.append(f"| {label} | " + " | ".join(_cell(values[c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def qualitative_grid(path: Path, items: list, images: list, picks: dict[str, list[str]],
                     anchor: str) -> Path:
    """§4.7: one purchased item and its Top-5 for every backbone (rows), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_id = {i.item_id: (i, im) for i, im in zip(items, images, strict=True)}
    cols = 1 + max(len(v) for v in picks.values())
    fig, axes = plt.subplots(len(picks), cols, figsize=(2.0 * cols, 2.3 * len(picks)),
                             squeeze=False)
    for row, (backbone, recs) in enumerate(picks.items()):
        for col in range(cols):
            ax = axes[row][col]
            ax.axis("off")
            item_id = anchor if col == 0 else (recs[col - 1] if col - 1 < len(recs) else None)
            if item_id is None:
                continue
            item, image = by_id[item_id]
            ax.imshow(image)
            label = "PURCHASED\n" if col == 0 else ""
            ax.set_title(f"{label}{item.category} · {item.gender}\n{item.colour}", fontsize=7)
        axes[row][0].text(-0.1, 0.5, BACKBONE_LABELS.get(backbone, backbone), rotation=90,
                          transform=axes[row][0].transAxes, ha="right", va="center", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def masking_examples(path: Path, items: list, n: int = 4) -> Path:
    """§3.1, Figure 2 style: original | mask | masked for ``n`` items at full resolution,
    preferring pictures with a person (most skin) so that both masking steps show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from models.masking import MaskConfig, apply_mask, garment_mask, skin_mask
    from models.visual import load_image

    pictures = [load_image(item.image) for item in items[:60]]
    skin = [float(skin_mask(np.asarray(p, dtype=np.float32)).mean()) for p in pictures]
    chosen = sorted(range(len(pictures)), key=lambda k: -skin[k])[: n - 1] + [0]
    fig, axes = plt.subplots(len(chosen), 3, figsize=(6.6, 2.3 * len(chosen)), squeeze=False)
    for row, k in enumerate(chosen):
        panels = (pictures[k], garment_mask(pictures[k], MaskConfig()),
                  apply_mask(pictures[k], MaskConfig()))
        for col, (panel, title) in enumerate(zip(panels, ("original", "garment mask",
                                                          "masked"), strict=True)):
            axes[row][col].imshow(panel, cmap="gray" if col == 1 else None)
            axes[row][col].axis("off")
            if row == 0:
                axes[row][col].set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def table_plot(path: Path, table1: dict[str, dict[str, tuple[float, float]]]) -> Path:
    """Bar chart of Table 1: category similarity and popularity MAE per backbone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(table1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("Category similarity (%)", "Popularity MAE (×100)"),
                          strict=True):
        means = [table1[b][metric][0] for b in labels]
        errs = [table1[b][metric][1] for b in labels]
        ax.bar(range(len(labels)), means, yerr=errs, capsize=3, color="#4c72b0")
        ax.set_xticks(range(len(labels)), labels, rotation=25, ha="right", fontsize=8)
        ax.set_title(metric)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


#: The paper's own numbers (DeepFashion, ImageNet-pretrained backbones), for orientation only.
PAPER_REFERENCE = """### For reference: the paper's numbers (DeepFashion, pretrained backbones)

| Paper table | Row | Category similarity | Gender alignment | Popularity MAE |
|---|---|---|---|---|
| 1 | ResNet-50 | 64.95% | 100% | 12.96 |
| 1 | DenseNet-121 | 63.53% | 100% | 12.47 |
| 1 | VGG16 | 57.99% | 100% | 13.32 |
| 2 | Full model | 62.16% | | 12.92 |
| 2 | – No pop. modulation | 63.53% | | 31.14 |
| 2 | – No visual sim. | 40.01% | | 0.22 |
| 3 | Low / Medium / High trendiness | 62.52 / 65.24 / 56.3% | | 11.84 / 13.96 / 12.05 |

The paper does not define its category-similarity percentage precisely; ours is the mean §3.4
similarity × 100 (exact category matches are the "Same category" column).
"""
