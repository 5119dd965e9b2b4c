"""The three studies of paper 000 §4: comparison (Table 2), ablation (Table 3), sensitivity
(Fig. 2), each run on one dataset/protocol/ranking and written under ``settings.out``.

- Comparison: Random, Pop, ItemCF, BPR-MF, NeuMF, VBPR, LightGCN and the proposed system
  (:func:`scripts.evaluation.proposed.proposed_scorer`).
- Ablation: the proposed system with λ = 0 ("w/o temporal attenuation") and with all behaviour
  weights 1 ("w/o multi-behavior weights"). "w/o textual/visual features" need the fusion
  reranker (``proposed.RERANKER_FACTORY``); without it the table says "not measured".
- Sensitivity: each behaviour weight swept alone over the paper's ranges (view 0.5–2,
  favorite 2–5, cart 4–7, purchase 9–12), the others at 1/3/5/10; HR@5 and NDCG@5 curves.
  On H&M (purchases only) a weight sweep cannot change any ranking (it scales each user's whole
  row, and both the cosine and the per-user order are scale-invariant), so it is not run there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from models.baselines import TrainConfig
from scripts.evaluation import proposed
from scripts.evaluation.features import describe, item_features
from scripts.evaluation.harness import (
    ModelFactory,
    Summary,
    baseline_factories,
    run_models,
)
from scripts.evaluation.protocols import EvalData, prepare
from scripts.evaluation.report import (
    git_commit,
    plot_comparison,
    plot_sensitivity,
    write_json,
    write_summary,
    write_table,
)
from streams.config import BEHAVIORS, DEFAULT_WEIGHTS

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
    decay_per_day: float = proposed.DEFAULT_DECAY_PER_DAY
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    models: list[str] | None = None
    studies: tuple[str, ...] = STUDIES
    out: str = "docs/results"
    data_root: str | None = None
    progress: bool = True

    def train_config(self) -> TrainConfig:
        return TrainConfig(dim=self.dim, epochs=self.epochs, lr=self.lr)

    def seed_list(self) -> list[int]:
        return list(range(self.seeds))

    def public(self) -> dict[str, object]:
        keep = ("dataset", "level", "protocol", "ranking", "seeds", "max_users", "epochs", "dim",
                "lr", "n_neg", "decay_per_day", "weights")
        d = asdict(self)
        return {k: d[k] for k in keep}


def _proposed(s: StudySettings, weights: dict[str, float] | None = None,
              decay: float | None = None) -> ModelFactory:
    w = dict(s.weights if weights is None else weights)
    lam = s.decay_per_day if decay is None else decay
    return lambda data, seed: proposed.proposed_scorer(data, weights=w, decay_per_day=lam)


def comparison(data: EvalData, s: StudySettings) -> dict[str, Summary]:
    feats = None
    if s.models is None or "VBPR" in s.models:
        feats = item_features(data.dataset, data.level, data.vocab, s.data_root, s.progress)
    factories = baseline_factories(s.train_config(), feats, s.models)
    factories["Proposed"] = _proposed(s)
    return run_models(factories, data, s.ranking, s.seed_list(), n_neg=s.n_neg,
                      progress=s.progress)


def ablation(data: EvalData, s: StudySettings) -> dict[str, Summary | None]:
    factories = {
        "w/o temporal attenuation (λ = 0)": _proposed(s, decay=0.0),
        "w/o multi-behavior weights (all 1)": _proposed(s, weights=dict.fromkeys(BEHAVIORS, 1.0)),
        "Proposed": _proposed(s),
    }
    done: dict[str, Summary | None] = dict(run_models(factories, data, s.ranking, s.seed_list(),
                                                      n_neg=s.n_neg, progress=s.progress))
    if proposed.RERANKER_FACTORY is None:
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
            factories[f"{behavior}={v:g}"] = _proposed(s, weights=w)
        res = run_models(factories, data, s.ranking, s.seed_list(), n_neg=s.n_neg,
                         progress=s.progress)
        sweeps[behavior] = [(float(v), res[f"{behavior}={v:g}"]) for v in values]
    return sweeps


def run(s: StudySettings) -> list[Path]:
    """Run the requested studies; returns the files written."""
    data = prepare(s.dataset, s.protocol, level=s.level, max_users=s.max_users,
                   root=s.data_root, train_frac=0.8)
    out = Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{data.label}_{s.ranking}"
    context = {"commit": git_commit(), "settings": s.public(), "data": data.info}
    written: list[Path] = []
    if "compare" in s.studies:
        res = comparison(data, s)
        notes = [describe(data.dataset, data.level),
                 "Proposed = decay-weighted ItemCF recall (Eq. 1–3 scores, co-visitation); "
                 + ("fusion reranker plugged in." if proposed.RERANKER_FACTORY else
                    "the fusion reranker is not plugged in yet.")]
        written += [write_table(out / f"{stem}_table2.md", "Comparison (paper Table 2)", context,
                                res, s.ranking, notes),
                    plot_comparison(out / f"{stem}_table2.png", res, context)]
        written.append(write_json(out / f"{stem}_table2.json", context, res))
        written.append(write_summary(out))
    if "ablation" in s.studies:
        res_a = ablation(data, s)
        notes = ["'w/o textual/visual features' need the fusion network (models/fusion.py via "
                 "proposed.RERANKER_FACTORY): not measured."
                 if proposed.RERANKER_FACTORY is None else ""]
        if data.dataset == "hm":
            notes.append("H&M holds purchases only: behaviour weights cannot change rankings.")
        written.append(write_table(out / f"{stem}_table3.md", "Ablation (paper Table 3)",
                                   context, res_a, s.ranking, notes))
    if "sensitivity" in s.studies and data.dataset != "hm":
        sweeps = sensitivity(data, s)
        written.append(plot_sensitivity(out / f"{stem}_fig2.png", sweeps, context))
        written.append(write_json(out / f"{stem}_fig2.json", context,
                                  {f"{b}={v:g}": r for b, pts in sweeps.items()
                                   for v, r in pts}))
    return written
