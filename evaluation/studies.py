"""The three studies of paper 000 §4: comparison (Table 2), ablation (Table 3), sensitivity
(Fig. 2), each run on one dataset/protocol/ranking and written under ``settings.out``.

- Comparison: Random, Pop, ItemCF, BPR-MF, NeuMF, VBPR, LightGCN and the proposed system
  (:func:`evaluation.proposed.proposed_scorer`). Where item content exists (H&M) the
  proposed system is the served two-stage one (online recall merge + fusion rerank), and two
  more rows show its parts: the recall alone and the fusion network ranking every item.
- Ablation: the proposed system with λ = 0 ("w/o temporal attenuation"), with all behaviour
  weights 1 ("w/o multi-behavior weights") and, where content exists, with the fusion network
  trained without text or without images (:mod:`evaluation.fusion_rerank`). Without
  content (Taobao) the modality rows read "not measured": there is nothing to remove.
- Sensitivity: each behaviour weight swept alone over the paper's ranges (view 0.5–2,
  favorite 2–5, cart 4–7, purchase 9–12), the others at 1/3/5/10; HR@5 and NDCG@5 curves.
  On H&M (purchases only) a weight sweep cannot change any ranking (it scales each user's whole
  row, and both the cosine and the per-user order are scale-invariant), so it is not run there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from evaluation import RESULTS_DIR, proposed
from evaluation.content import DEFAULT_CACHE, ItemContent, content_features
from evaluation.features import describe, item_features
from evaluation.fusion_rerank import FusionEvalConfig, SharedFits
from evaluation.harness import (
    ModelFactory,
    Summary,
    baseline_factories,
    run_models,
)
from evaluation.protocols import EvalData, prepare
from evaluation.report import (
    git_commit,
    plot_comparison,
    plot_sensitivity,
    write_json,
    write_summary,
    write_table,
)
from models.baselines import BaselineConfig
from models.behaviors import BEHAVIORS

SWEEPS: dict[str, np.ndarray] = {
    "view": np.linspace(0.5, 2.0, 7),
    "favorite": np.linspace(2.0, 5.0, 7),
    "cart": np.linspace(4.0, 7.0, 7),
    "purchase": np.linspace(9.0, 12.0, 7),
}
STUDIES: tuple[str, ...] = ("compare", "ablation", "sensitivity")


@dataclass
class StudySettings:
    """Everything that defines a run; written into every table header."""

    dataset: str = "taobao"
    level: str = "category"
    protocol: str = "peruser"
    ranking: str = "full"
    seeds: int = 5
    max_users: int | None = None
    epochs: int = 30
    dim: int = 64
    lr: float = 5e-3
    n_neg: int = 99
    decay_per_day: float = proposed.PAPER_DECAY.decay_per_day
    weights: dict[str, float] = field(default_factory=lambda: dict(proposed.PAPER_DECAY.weights))
    models: list[str] | None = None
    studies: tuple[str, ...] = STUDIES
    out: str = str(RESULTS_DIR)
    data_root: str | None = None
    progress: bool = True
    fusion_epochs: int = FusionEvalConfig.epochs
    fusion_loss: str = "bpr"
    cache: str = str(DEFAULT_CACHE)

    def train_config(self) -> BaselineConfig:
        return BaselineConfig(dim=self.dim, epochs=self.epochs, lr=self.lr)

    def seed_list(self) -> list[int]:
        return list(range(self.seeds))

    def public(self) -> dict[str, object]:
        keep = ("dataset", "level", "protocol", "ranking", "seeds", "max_users", "epochs", "dim",
                "lr", "n_neg", "decay_per_day", "weights", "fusion_epochs", "fusion_loss")
        d = asdict(self)
        return {k: d[k] for k in keep}


@dataclass
class Context:
    """What a study run shares: its settings, the item content and the trained networks."""

    settings: StudySettings
    content: ItemContent | None = None
    fits: SharedFits = field(default_factory=SharedFits)

    def proposed(self, weights: dict[str, float] | None = None, decay: float | None = None,
                 ablate: str | None = None, rerank: bool = True,
                 loss: str | None = None) -> ModelFactory:
        """The proposed system; with content and ``rerank``, recall + fusion rerank."""
        s = self.settings
        w = dict(s.weights if weights is None else weights)
        lam = s.decay_per_day if decay is None else decay

        def make(data: EvalData, seed: int) -> proposed.Recommender:
            reranker = self._reranker(w, lam, ablate, loss) if rerank else None
            return proposed.proposed_scorer(data, weights=w, decay_per_day=lam,
                                            reranker=reranker)
        return make

    def fusion_alone(self) -> ModelFactory:
        s = self.settings
        return lambda data, seed: proposed.FusionAlone(
            data, self._reranker(dict(s.weights), s.decay_per_day, None))

    def _reranker(self, weights: dict[str, float], decay: float, ablate: str | None,
                  loss: str | None = None):
        if self.content is None:
            return None
        config = FusionEvalConfig(epochs=self.settings.fusion_epochs, ablate=ablate,
                                  loss=loss or self.settings.fusion_loss)
        return self.fits.reranker(self.content, weights, decay, config)


def comparison(data: EvalData, ctx: Context) -> dict[str, Summary]:
    s = ctx.settings
    feats = None
    if s.models is None or "VBPR" in s.models:
        feats = item_features(data.dataset, data.level, data.vocab, s.data_root, s.progress)
    factories = baseline_factories(s.train_config(), feats, s.models)
    factories["Proposed"] = ctx.proposed()
    if ctx.content is not None:
        if s.fusion_loss != "mse":
            factories["Proposed, MSE loss (Eq. 21)"] = ctx.proposed(loss="mse")
        factories["Proposed: recall only"] = ctx.proposed(rerank=False)
        factories[proposed.FusionAlone.name] = ctx.fusion_alone()
    return run_models(factories, data, s.ranking, s.seed_list(), n_neg=s.n_neg,
                      progress=s.progress)


def ablation(data: EvalData, ctx: Context) -> dict[str, Summary | None]:
    s = ctx.settings
    factories = {
        "w/o temporal attenuation (λ = 0)": ctx.proposed(decay=0.0),
        "w/o multi-behavior weights (all 1)": ctx.proposed(
            weights=dict.fromkeys(BEHAVIORS, 1.0)),
    }
    if ctx.content is not None:
        factories["w/o textual features"] = ctx.proposed(ablate="text")
        factories["w/o visual features"] = ctx.proposed(ablate="visual")
    factories["Proposed"] = ctx.proposed()
    done: dict[str, Summary | None] = dict(run_models(factories, data, s.ranking, s.seed_list(),
                                                      n_neg=s.n_neg, progress=s.progress))
    if ctx.content is None:
        done["w/o textual features"] = None
        done["w/o visual features"] = None
    return done


def sensitivity(data: EvalData, s: StudySettings) -> dict[str, list[tuple[float, Summary]]]:
    sweeps: dict[str, list[tuple[float, Summary]]] = {}
    for behavior, values in SWEEPS.items():
        factories = {}
        for v in values:
            w = dict(s.weights)
            w[behavior] = float(v)
            factories[f"{behavior}={v:g}"] = Context(s).proposed(weights=w)
        res = run_models(factories, data, s.ranking, s.seed_list(), n_neg=s.n_neg,
                         progress=s.progress)
        sweeps[behavior] = [(float(v), res[f"{behavior}={v:g}"]) for v in values]
    return sweeps


def run(s: StudySettings) -> list[Path]:
    """Run the requested studies; returns the files written."""
    data = prepare(s.dataset, s.protocol, level=s.level, max_users=s.max_users,
                   root=s.data_root, train_frac=0.8)
    ctx = Context(s)
    if {"compare", "ablation"} & set(s.studies):
        ctx.content = content_features(data.dataset, data.vocab, s.data_root, s.cache,
                                       s.progress)
    if ctx.content is not None:
        data.info.update(ctx.content.info())
        data.info["feature_store"] = ctx.content.store_version
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{data.label}_{s.ranking}"
    context = {"commit": git_commit(), "settings": s.public(), "data": data.info}
    written: list[Path] = []
    if "compare" in s.studies:
        res = comparison(data, ctx)
        notes = [describe(data.dataset, data.level), _proposed_note(ctx),
                 COLD_NOTE if s.ranking == "full" else ""]
        written += [write_table(out / f"{stem}_table2.md", "Comparison (paper Table 2)", context,
                                res, s.ranking, notes),
                    plot_comparison(out / f"{stem}_table2.png", res, context)]
        written.append(write_json(out / f"{stem}_table2.json", context, res))
        written.append(write_summary(out))
    if "ablation" in s.studies:
        res_a = ablation(data, ctx)
        notes = [_proposed_note(ctx)]
        if ctx.content is None:
            notes.append("'w/o textual/visual features': no item content exists here, so "
                         "there is no modality to remove: not measured.")
        else:
            notes.append("'w/o textual features': text inputs zeroed; 'w/o visual features': "
                         "every item treated as image-less (visual token masked), both in "
                         "training and ranking.")
        if data.dataset == "hm":
            notes.append("H&M holds purchases only: uniform behaviour weights rescale S by "
                         "1/10, which leaves the recall's ranking unchanged; the fusion network "
                         "trains on the rescaled targets.")
        written.append(write_table(out / f"{stem}_table3.md", "Ablation (paper Table 3)",
                                   context, res_a, s.ranking, notes))
    if "sensitivity" in s.studies and data.dataset != "hm":
        sweeps = sensitivity(data, s)
        written.append(plot_sensitivity(out / f"{stem}_fig2.png", sweeps, context))
        written.append(write_json(out / f"{stem}_fig2.json", context,
                                  {f"{b}={v:g}": r for b, pts in sweeps.items()
                                   for v, r in pts}))
    return written


COLD_NOTE = ("'HR@10 cold' / 'Recall@20 cold' (full ranking): positives restricted to items "
             "never seen in training, averaged over the users that have one; only content can "
             "reach them.")


def _proposed_note(ctx: Context) -> str:
    if ctx.content is None:
        return ("Proposed = decay-weighted ItemCF recall (Eq. 1–3 scores, co-visitation); no "
                "item content exists here, so there is no fusion rerank.")
    return ("Proposed = the served two-stage system: serving.recall.recall_candidates over "
            "co-visitation, content (fused-vector) neighbours and trending items, reranked by "
            f"the fusion network (Eq. 13–20) trained on the training events with the "
            f"{ctx.settings.fusion_loss.upper()} loss over sampled negatives (≤ "
            f"{ctx.settings.fusion_epochs} epochs, early stopping); 'MSE loss (Eq. 21)' is the "
            "same system trained with the paper's regression on S; 'recall only' skips the "
            "rerank; 'Fusion network, all items' ranks every item with the network alone.")
