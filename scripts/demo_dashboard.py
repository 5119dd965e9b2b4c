"""The demo's dashboard picture: traffic, freshness and one shopper's Top-5 with thumbnails.

Saved as PNG at the end of ``stylestream demo`` (people would rather look than read): events
offered and lists received per second, freshness p50/p99 per window, and the latest list of one
shopper drawn with the catalog's images, titles, scores and first reasons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from models.catalog import CatalogItem  # noqa: E402


def _per_window(times: np.ndarray, start: float, end: float, width: float
                ) -> tuple[np.ndarray, np.ndarray]:
    edges = np.arange(start, max(end, start + width) + width, width)
    counts, _ = np.histogram(times, bins=edges)
    return edges[:-1] - start, counts / width


def save_dashboard(path: Path, started: float, ended: float,
                   sent_at: Sequence[tuple[float, int]],
                   freshness: Sequence[tuple[float, float]], message: dict | None,
                   catalog: Mapping[str, CatalogItem], catalog_dir: Path,
                   window: float = 2.0) -> Path:
    """``sent_at``: (time, cumulative events sent); ``freshness``: (received at, seconds)."""
    fig = plt.figure(figsize=(14, 8), constrained_layout=True)
    grid = fig.add_gridspec(2, 5)
    traffic = fig.add_subplot(grid[0, :3])
    if sent_at:
        t, sent = np.array(sent_at, dtype=float).T
        rate = np.diff(sent, prepend=0) / np.maximum(np.diff(t, prepend=started), 1e-9)
        traffic.plot(t - started, rate, label="events sent / s", color="tab:blue")
    received = np.array([r for r, _ in freshness], dtype=float)
    x, lists = _per_window(received, started, ended, window)
    traffic.step(x, lists, where="post", label="Top-5 lists received / s", color="tab:green")
    traffic.set(xlabel="seconds", ylabel="per second", title="Traffic")
    traffic.legend(loc="upper left")

    fresh = fig.add_subplot(grid[0, 3:])
    if len(freshness):
        data = np.array(freshness, dtype=float)
        bins = ((data[:, 0] - started) // window).astype(int)
        xs, p50, p99 = [], [], []
        for b in np.unique(bins):
            values = data[bins == b, 1] * 1000
            xs.append(b * window)
            p50.append(np.percentile(values, 50))
            p99.append(np.percentile(values, 99))
        fresh.plot(xs, p50, marker=".", label="p50")
        fresh.plot(xs, p99, marker=".", label="p99")
        fresh.legend()
    fresh.set(xlabel="seconds", ylabel="ms", title="Freshness (list received − event time)")

    items = (message or {}).get("items", [])[:5]
    for k in range(5):
        ax = fig.add_subplot(grid[1, k])
        ax.axis("off")
        if k >= len(items):
            continue
        entry = items[k]
        item = catalog.get(entry["item_id"])
        if item is not None and item.image:
            image_path = Path(item.image)
            image_path = image_path if image_path.is_absolute() else catalog_dir / image_path
            if image_path.exists():
                ax.imshow(Image.open(image_path).convert("RGB"))
        title = item.title if item is not None else entry["item_id"]
        reasons = "\n".join(r[:38] for r in entry["reasons"][:2])
        ax.set_title(f"{k + 1}. {title[:30]}\nscore {entry['score']:.3f}", fontsize=9)
        ax.text(0.5, -0.05, reasons, transform=ax.transAxes, ha="center", va="top", fontsize=7)
    if message:
        fig.suptitle(f"stylestream demo — below: the latest Top-5 for {message['user_id']} "
                     f"(model {message['model_version']})", fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
