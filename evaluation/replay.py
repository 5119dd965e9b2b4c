"""The replay protocol: what does each shopper do after the log, and did the list show it?

Cut a log at a time T (Taobao: the start of its last day, UTC+8; H&M: the start of its last
month; ``--cut`` for any log). Everything before T is the stream; each shopper's *last* list
before T is scored against what the shopper did in ``[T, T + horizon)``:

- HR@5 and NDCG@5 (binary gains) over every item the shopper touched after T, and HR@5 over
  *new-to-shopper* items only (items absent from the shopper's events before T; shoppers with
  at least one such item);
- Recall@20 where a list is longer than five (references and the offline twin; the live system
  publishes five);
- no list — the system's or a reference's — holds an item the shopper bought before T, and those
  items are not targets either (nothing may show them);
- intra-list diversity (mean pairwise dissimilarity in a Top-5: :mod:`evaluation.list_diversity`)
  and catalogue coverage (share of the log's items shown to anyone).

References on the same shoppers: global popularity (all events before T), trending (events in
the last ``trend_window`` before T), own history (the shopper's strongest decayed items, Eq. 3,
purchased ones left out), ItemCF and LightGCN (trained on the events before T). Paired bootstrap
intervals (users resampled) compare each with the system.

The system's lists come from :mod:`evaluation.live_replay` (the real workers through Kafka and
Redis: the table that counts) or from this module's offline twin, which rebuilds the Redis
state from the log (:mod:`evaluation.stream_state`) and calls the worker's own recall
(:func:`serving.recall.recall_candidates`), scorers and :func:`serving.diversity.final_list`.

The final ranker (:mod:`models.next_event`) is trained here, on the log before T only: cuts at
T − 2·step, T − 3·step, … give training groups (candidates recalled at the cut, labelled by the
next ``horizon``), the cut at T − step validates (early stopping). Nothing after T is read
before the lists exist.
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from evaluation.harness import paired_bootstrap
from evaluation.list_diversity import Dissimilarity, intra_list_diversity
from evaluation.report import git_commit
from evaluation.stream_state import StreamState
from models.baselines import BaselineConfig, ItemCF, LightGCN
from models.datasets import Interaction, InteractionArrays, Vocabulary
from models.next_event import (
    NextEventRanker,
    RankerConfig,
    RankingGroups,
    fit_calibration,
    load_ranker,
    save_ranker,
    train_ranker,
)
from serving.chain import ScorerChain
from serving.diversity import DiversityConfig, ItemFacts, final_list
from serving.next_event_scorer import kept_by_chain
from serving.pair_features import FEATURES, IN_HISTORY, LOG_HISTORY_SIZE, pair_features
from serving.pipeline import ServingOptions, build_chain
from serving.recall import RecallConfig, popularity_items, recall_batch, seed_items
from serving.scorer import (
    Candidate,
    PopularitySnapshot,
    RerankRequest,
    ScoredItem,
    Scorer,
    ShopperContext,
)
from serving.worker import TOP_K
from streams.config import BEHAVIORS, DecaySettings

log = logging.getLogger(__name__)

LONG_K = 20
TAOBAO_TZ = timezone(timedelta(hours=8))


# --- the cut ------------------------------------------------------------------------------

def default_cut(dataset: str, events: Sequence[Interaction]) -> float:
    """Taobao: 00:00 (UTC+8) of the log's last day; H&M (and others): the first day (UTC) of
    the log's last month."""
    last = max(e.t for e in events)
    if dataset == "taobao":
        day = datetime.fromtimestamp(last, TAOBAO_TZ)
        return day.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    day = datetime.fromtimestamp(last, UTC)
    return day.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def default_step(dataset: str) -> float:
    """Horizon and spacing of the training cuts: a day (Taobao), 30 days (H&M, others)."""
    return 86400.0 if dataset == "taobao" else 30 * 86400.0


def parse_time(raw: str) -> float:
    """Epoch seconds or ISO-8601 (a date alone means 00:00 UTC)."""
    try:
        return float(raw)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(raw)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


# --- what happened after T --------------------------------------------------------------------

@dataclass
class Future:
    """Per shopper: the items touched in ``[cut, cut + horizon)``, minus those bought before
    the cut (no list may show them), and which of them are new to the shopper."""

    targets: dict[str, set[str]]
    new: dict[str, set[str]]


def future_of(before: Sequence[Interaction], after: Iterable[Interaction]) -> Future:
    seen: dict[str, set[str]] = defaultdict(set)
    bought: dict[str, set[str]] = defaultdict(set)
    for e in before:
        seen[e.user].add(e.item)
        if e.behavior == "purchase":
            bought[e.user].add(e.item)
    targets: dict[str, set[str]] = defaultdict(set)
    for e in after:
        if e.user in seen and e.item not in bought[e.user]:
            targets[e.user].add(e.item)
    targets = {u: items for u, items in targets.items() if items}
    return Future(targets, {u: items - seen[u] for u, items in targets.items()})


# --- metrics ---------------------------------------------------------------------------------

def list_metrics(lists: Mapping[str, Sequence[str]], future: Future,
                 users: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-user HR@5, NDCG@5, Recall@20 (NaN when every list is ≤ 5 long) and HR@5 on new
    items (NaN for shoppers without a new target)."""
    discount = 1.0 / np.log2(np.arange(2, TOP_K + 2))
    long_lists = any(len(v) > TOP_K for v in lists.values())
    out = {name: np.full(len(users), np.nan) for name in
           ("HR@5", "NDCG@5", "Recall@20", "HR@5 new")}
    for row, user in enumerate(users):
        shown = list(lists.get(user, ()))
        targets = future.targets[user]
        top = shown[:TOP_K]
        hits = np.array([item in targets for item in top], dtype=float)
        out["HR@5"][row] = float(hits.any())
        ideal = discount[: min(TOP_K, len(targets))].sum()
        out["NDCG@5"][row] = float((hits * discount[: len(hits)]).sum() / ideal)
        if long_lists:
            out["Recall@20"][row] = len(targets & set(shown[:LONG_K])) / len(targets)
        new = future.new[user]
        if new:
            out["HR@5 new"][row] = float(any(item in new for item in top))
    return out


def diversity_metrics(lists: Mapping[str, Sequence[str]], users: Sequence[str],
                      dissimilarity: Dissimilarity | None, n_items: int) -> dict[str, float]:
    """Intra-list diversity (:func:`evaluation.list_diversity.intra_list_diversity` of the
    Top-5; NaN without a dissimilarity) and coverage (distinct Top-5 items / items in the
    log)."""
    shown: set[str] = set()
    for user in users:
        shown.update(list(lists.get(user, ()))[:TOP_K])
    ild = (intra_list_diversity(lists, users, dissimilarity, TOP_K)
           if dissimilarity is not None else math.nan)
    return {"ILD@5": ild, "coverage": len(shown) / max(n_items, 1)}


# --- references --------------------------------------------------------------------------------

def _top(scores: Mapping[str, float], excluded: set[str], k: int) -> list[str]:
    ranked = sorted(((i, s) for i, s in scores.items() if i not in excluded),
                    key=lambda kv: (-kv[1], kv[0]))
    return [i for i, _ in ranked[:k]]


def _global_list(counts: Counter[str], excluded: Mapping[str, set[str]],
                 users: Sequence[str], k: int) -> dict[str, list[str]]:
    ranked = [i for i, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    out = {}
    for user in users:
        skip = excluded.get(user, set())
        out[user] = [i for i in ranked[: k + len(skip)] if i not in skip][:k]
    return out


def reference_lists(before: Sequence[Interaction], state: StreamState, cut: float,
                    users: Sequence[str], trend_window: float, seed: int = 0,
                    with_models: bool = True) -> dict[str, dict[str, list[str]]]:
    """Popularity, trending, own history, ItemCF and LightGCN lists (``LONG_K`` long)."""
    bought: dict[str, set[str]] = defaultdict(set)
    for e in before:
        if e.behavior == "purchase":
            bought[e.user].add(e.item)
    popular = Counter(e.item for e in before)
    recent = Counter(e.item for e in before if e.t >= cut - trend_window)
    refs = {
        "Popularity": _global_list(popular, bought, users, LONG_K),
        "Trending": _global_list(recent or popular, bought, users, LONG_K),
        "Own history (Eq. 3)": {u: _top(state.shopper(u, cut).scores, bought[u], LONG_K)
                                for u in users},
    }
    if with_models:
        vocab = Vocabulary.build(before)
        train = InteractionArrays.encode(before, vocab)
        uix = vocab.user_index()
        rows = np.array([uix[u] for u in users], dtype=np.int64)
        item_index = vocab.item_index()
        for name, model in (("ItemCF", ItemCF()),
                            ("LightGCN", LightGCN(BaselineConfig(epochs=20)))):
            model.fit(train, vocab.n_users, vocab.n_items, seed=seed)
            scores = model.score(rows)
            lists = {}
            for b, user in enumerate(users):
                row = scores[b].astype(np.float64)
                for item in bought[user]:
                    row[item_index[item]] = -np.inf
                best = np.argsort(-row, kind="stable")[:LONG_K]
                lists[user] = [vocab.items[i] for i in best if np.isfinite(row[i])]
            refs[name] = lists
    return refs


# --- the system offline: recall, features, ranker ------------------------------------------------

def _no_catalog() -> ServingOptions:
    return ServingOptions(rules=False, follow_catalog=False)


@dataclass
class Parts:
    """The chain below the final ranker: the workers' serving options (the fusion network,
    feature store and catalog where the data set has content; else the decayed-score/
    co-visitation scorer alone), content recall (the feature store's neighbours), the diversity
    step's item facts, and which pair-feature columns the ranker reads (``keep``; None = all;
    the others are zero, for the "no pair features" ablation)."""

    options: ServingOptions = field(default_factory=_no_catalog)
    content: Callable[[list[str], int], Mapping] | None = None
    facts: Mapping[str, ItemFacts] = field(default_factory=dict)
    keep: tuple[int, ...] | None = None


def keep_columns(rows: np.ndarray, keep: tuple[int, ...] | None) -> np.ndarray:
    """``rows`` with every pair-feature column outside ``keep`` set to 0 (None: unchanged)."""
    if keep is None:
        return rows
    out = np.zeros_like(rows)
    out[:, list(keep)] = rows[:, list(keep)]
    return out


class _KeptColumns:
    """A ranker model that reads only the ``keep`` columns of its pair features."""

    def __init__(self, model, keep: tuple[int, ...]) -> None:
        self.model, self.keep = model, keep

    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.model.score(keep_columns(rows, self.keep))


@dataclass
class SystemConfig:
    """What the served system is made of, for the offline twin and the ranker's training."""

    decay: DecaySettings = field(default_factory=DecaySettings)
    recall: RecallConfig = field(default_factory=RecallConfig)
    diversity: DiversityConfig = field(default_factory=DiversityConfig)
    ranker: RankerConfig = field(default_factory=lambda: RankerConfig(len(FEATURES)))
    #: training cuts before the validation cut, ``cut_spacing`` × horizon apart
    training_cuts: int = 5
    cut_spacing: float = 1.0
    parts: Parts = field(default_factory=Parts)


def recall_at(state: StreamState, shoppers: list[ShopperContext], at: float,
              config: RecallConfig,
              content: Callable[[list[str], int], Mapping] | None = None,
              ) -> tuple[list[list[Candidate]], list[set[str]], PopularitySnapshot]:
    """The worker's recall for a batch of shoppers (``RerankWorker.rank``'s first half) on the
    offline state: candidates, excluded items and the popularity snapshot per shopper. Content
    neighbours are limited to the items the state has seen (all of them at T)."""
    seeds = seed_items(shoppers, config)
    covisits = state.covisited(seeds, config.covisit_per_item)
    trending = state.trending(at, config.trending)
    neighbours = content(seeds, config.content_per_item) if content is not None and seeds else {}
    # the content index holds every item of the log before T; at an earlier cut only the items
    # seen by then exist (else training and validation cuts would recall the next horizon's
    # new arrivals, which the index at T cannot hold)
    neighbours = {seed: [(i, s) for i, s in found if i in state.popularity]
                  for seed, found in neighbours.items()}
    candidates, excluded = recall_batch(shoppers, covisits, trending, neighbours, config)
    popularity = state.popularity_of(popularity_items(shoppers, candidates), at)
    return candidates, excluded, PopularitySnapshot.of(popularity, trending)


def _shoppers(state: StreamState, users: Iterable[str], at: float) -> list[ShopperContext]:
    return [state.shopper(u, at) for u in users]


def training_groups(events: Sequence[Interaction], cuts: Sequence[float], horizon: float,
                    config: SystemConfig, base: Scorer) -> dict[float, RankingGroups]:
    """One pass over the log; at each cut, the groups of every shopper active before and after
    it: pair features of the recalled candidates, labelled by the next ``horizon``."""
    state = StreamState(config.decay)
    out: dict[float, RankingGroups] = {}
    pending = sorted(cuts)
    position = 0
    for cut in pending:
        while position < len(events) and events[position].t < cut:
            state.apply(events[position])
            position += 1
        future = future_of(events[:position],
                           (e for e in events[position:] if e.t < cut + horizon))
        users = sorted(u for u in future.targets if u in state.last_event)
        shoppers = _shoppers(state, users, cut)
        candidates, _, popularity = recall_at(state, shoppers, cut, config.recall,
                                              config.parts.content)
        top_pop = max(popularity.values.values(), default=0.0)
        scored = base.score(RerankRequest(shoppers, candidates, cut, popularity))
        feats, labels, offsets = [], [], [0]
        for shopper, cands, items in zip(shoppers, candidates, scored, strict=True):
            cands, by_item = kept_by_chain(cands, items)  # as served
            if not cands:
                continue
            rows = pair_features(shopper, cands, popularity.values, top_pop,
                                 [by_item[c.item_id].score for c in cands])
            feats.append(rows)
            targets = future.targets[shopper.user_id]
            labels.append(np.array([c.item_id in targets for c in cands], dtype=np.float32))
            offsets.append(offsets[-1] + len(cands))
        out[cut] = RankingGroups(
            np.concatenate(feats) if feats else np.zeros((0, len(FEATURES)), np.float32),
            np.concatenate(labels) if labels else np.zeros(0, np.float32),
            np.asarray(offsets, np.int64))
    return out


def _kept(groups: RankingGroups, keep: tuple[int, ...] | None) -> RankingGroups:
    return groups if keep is None else replace(groups,
                                               features=keep_columns(groups.features, keep))


class NoRankerData(ValueError):
    """The log before the cut holds no training group for the final ranker (too short for the
    horizon, or no shopper active on both sides of any training cut)."""


#: the cut spacings (× ``cut_spacing``) tried in turn when the log is too short for the first
SHORT_LOG_SPACINGS: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)


def fit_ranker(before: Sequence[Interaction], cut: float, step: float,
               config: SystemConfig, base: Scorer) -> tuple[NextEventRanker, dict]:
    """Train on ``training_cuts`` cuts ``cut − step − s, cut − step − 2s, …`` (s =
    ``cut_spacing`` · step), validate on ``cut − step``; only events before ``cut`` are read
    (a training horizon may overlap the validation one, never the cut).

    A log too short for that spacing (one that starts less than ``step + s`` before the cut)
    is tried with the spacings of :data:`SHORT_LOG_SPACINGS` in turn (the training horizons
    then overlap one another); :class:`NoRankerData` when none gives a training group. Without
    a hit among the validation cut's candidates the ranker is left uncalibrated (its lists are
    ordered by its score; the explore term needs the calibration)."""
    problem = ""
    for factor in SHORT_LOG_SPACINGS:
        spaced = replace(config, cut_spacing=config.cut_spacing * factor)
        try:
            return _fit_ranker(before, cut, step, spaced, base)
        except NoRankerData as exc:
            problem = str(exc)
    raise NoRankerData(problem)


def _fit_ranker(before: Sequence[Interaction], cut: float, step: float,
                config: SystemConfig, base: Scorer) -> tuple[NextEventRanker, dict]:
    valid_cut = cut - step
    spacing = config.cut_spacing * step
    train_cuts = [valid_cut - (k + 1) * spacing for k in range(config.training_cuts)]
    train_cuts = [c for c in train_cuts if before and c > before[0].t]
    if not train_cuts:
        raise NoRankerData("the log before the cut is too short for one training cut and one "
                           f"validation cut of {step / 86400:g} days")
    groups = training_groups(before, [*train_cuts, valid_cut], step, config, base)
    keep = config.parts.keep
    train = _kept(RankingGroups.concat([groups[c] for c in train_cuts]), keep)
    valid = _kept(groups[valid_cut].with_positives(), keep)
    if train.with_positives().n_groups == 0:
        raise NoRankerData("no training cut has a shopper whose next events were recalled "
                           f"(spacing {spacing / 86400:g} days)")
    model, info = train_ranker(train, valid, config.ranker)
    # chances of a hit for the repeat/explore composition: fitted on every validation group
    # (with or without a recalled positive: the population the lists are made for)
    held_out = groups[valid_cut]
    try:
        info["calibration"] = fit_calibration(
            model.score(keep_columns(held_out.features, keep)), held_out,
            IN_HISTORY, LOG_HISTORY_SIZE)
    except ValueError as exc:
        log.warning("final ranker left uncalibrated: %s", exc)
        info["calibration"] = None
    info.update({"train_cuts": train_cuts, "valid_cut": valid_cut,
                 "valid_groups": valid.n_groups, "cut_spacing_days": spacing / 86400})
    return model, info


def offline_lists(before: Sequence[Interaction], cut: float, users: Sequence[str],
                  config: SystemConfig, chain: ScorerChain,
                  facts: Mapping[str, ItemFacts] | None = None, k: int = LONG_K,
                  batch: int = 64) -> dict[str, list[str]]:
    """Each shopper's list at ``cut`` through the worker's recall, ``chain`` and
    :func:`final_list` (the offline twin of the live replay)."""
    return compose_lists(scored_at(before, cut, users, config, chain, batch), k,
                         config.parts.facts if facts is None else facts, config.diversity)


@dataclass
class ScoredShopper:
    """One shopper's scored candidates at a cut, before the final list is composed."""

    user: str
    excluded: set[str]
    items: list[ScoredItem]
    own: set[str]
    calibrated: bool


def scored_at(before: Sequence[Interaction], cut: float, users: Sequence[str],
              config: SystemConfig, chain: ScorerChain,
              batch: int = 64) -> list[ScoredShopper]:
    """The worker's recall and ``chain`` for each shopper at ``cut`` (the state rebuilt from
    ``before``): what :func:`serving.diversity.final_list` composes lists from."""
    state = StreamState(config.decay)
    state.apply_all(before)
    out: list[ScoredShopper] = []
    for start in range(0, len(users), batch):
        shoppers = _shoppers(state, users[start: start + batch], cut)
        candidates, excluded, popularity = recall_at(state, shoppers, cut, config.recall,
                                                     config.parts.content)
        scored = chain.score(RerankRequest(shoppers, candidates, cut, popularity))
        calibrated = chain.calibrated
        for shopper, skip, items in zip(shoppers, excluded, scored, strict=True):
            out.append(ScoredShopper(shopper.user_id, skip, items, set(shopper.scores),
                                     calibrated))
    return out


def compose_lists(scored: Sequence[ScoredShopper], k: int,
                  facts: Mapping[str, ItemFacts] | None,
                  diversity: DiversityConfig) -> dict[str, list[str]]:
    """Each shopper's final list (:func:`serving.diversity.final_list`, the worker's)."""
    return {s.user: [i.item_id for i in final_list(s.items, s.excluded, k, facts or {},
                                                     diversity, s.own, s.calibrated)]
            for s in scored}


def decay_covis_chain(parts: Parts | None = None) -> ScorerChain:
    """The workers' chain without the final ranker: ``parts``' (default: the recall strength
    order)."""
    return build_chain((parts or Parts()).options)


def ranker_chain(path: Path, parts: Parts | None = None) -> ScorerChain:
    """The workers' chain with the final ranker ``path`` over ``parts``' chain (default: the
    recall strength)."""
    parts = parts or Parts()
    chain = build_chain(replace(parts.options, ranker=str(path)))
    if parts.keep is not None:
        ranker = chain.top
        ranker.model = _KeptColumns(ranker.model, parts.keep)  # type: ignore[attr-defined]
    return chain


def system_chain(ranker: Path | None, config: SystemConfig) -> ScorerChain:
    """The served chain: the final ranker ``ranker`` over ``config``'s parts, or the chain
    without it (None: no ranker could be trained)."""
    return (decay_covis_chain(config.parts) if ranker is None
            else ranker_chain(ranker, config.parts))


def every_shopper_lists(before: Sequence[Interaction], cut: float, config: SystemConfig,
                        ranker: Path | None) -> dict[str, list[str]]:
    """The offline twin's Top-5 of every shopper of ``before`` (what ``--lists-out`` writes
    without the live services)."""
    users = sorted({e.user for e in before})
    return offline_lists(before, cut, users, config, system_chain(ranker, config), k=TOP_K)


def train_and_save(before: Sequence[Interaction], cut: float, step: float,
                   config: SystemConfig, path: Path, version: str) -> dict:
    model, info = fit_ranker(before, cut, step, config, decay_covis_chain(config.parts))
    save_ranker(path, model, version=version, feature_names=FEATURES,
                extra={"valid_ndcg5": info["best_ndcg5"], "train_groups": info["train_groups"]},
                calibration=info["calibration"])
    return info


# --- the table -----------------------------------------------------------------------------------

@dataclass
class ReplayTable:
    """Rows of per-user metrics on the same shoppers, the first row being the system."""

    label: str
    users: list[str]
    rows: dict[str, dict[str, np.ndarray]]
    extra: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for name, metrics in self.rows.items():
            out[name] = {m: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan
                         for m, v in metrics.items()}
            out[name].update(self.extra.get(name, {}))
        return out

    def versus(self, system: str) -> dict[str, dict[str, tuple[float, float, float]]]:
        """Paired bootstrap of ``system`` minus every other row on HR@5 and NDCG@5."""
        out = {}
        base = self.rows[system]
        for name, metrics in self.rows.items():
            if name == system:
                continue
            out[name] = {m: paired_bootstrap(base[m], metrics[m]) for m in ("HR@5", "NDCG@5")}
        return out


def make_table(label: str, lists: Mapping[str, Mapping[str, Sequence[str]]], future: Future,
               users: Sequence[str], dissimilarity: Dissimilarity | None,
               n_items: int) -> ReplayTable:
    rows, extra = {}, {}
    for name, per_user in lists.items():
        rows[name] = list_metrics(per_user, future, users)
        extra[name] = diversity_metrics(per_user, users, dissimilarity, n_items)
    return ReplayTable(label, list(users), rows, extra)


def markdown(table: ReplayTable, system: str, command: str) -> str:
    """The table as markdown: means, diversity/coverage, and paired intervals vs the system."""
    summary = table.summary()
    versus = table.versus(system)
    cols = ["HR@5", "NDCG@5", "Recall@20", "HR@5 new", "ILD@5", "coverage"]
    lines = [f"# Replay: {table.label}", "", f"`{command}`", "",
             f"- commit: `{git_commit()}`; written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"]
    for key, value in table.info.items():
        lines.append(f"- {key}: {value}")
    lines += ["", "| ranking | " + " | ".join(cols) + " | system − row, HR@5 (95% CI) | "
              "system − row, NDCG@5 (95% CI) |",
              "|---|" + "---:|" * (len(cols) + 2)]
    for name, values in summary.items():
        cells = [("—" if math.isnan(values.get(c, math.nan)) else f"{values[c]:.3f}")
                 for c in cols]
        if name == system:
            cells += ["(system)", "(system)"]
        else:
            for m in ("HR@5", "NDCG@5"):
                mean, lo, hi = versus[name][m]
                cells.append(f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        bold = f"**{name}**" if name == system else name
        lines.append(f"| {bold} | " + " | ".join(cells) + " |")
    lines += ["", "Δ = system − reference over the same shoppers (paired bootstrap, 1,000 "
              "resamples): an interval above 0 means the system is better.", ""]
    lines += [line for note in table.notes for line in (note, "")]
    return "\n".join(lines)


def ablation_configs(config: SystemConfig) -> dict[str, SystemConfig]:
    """The offline ablation rows: no decay (λ = 0) and uniform behaviour weights; both retrain
    the ranker on their own state."""
    uniform = {b: 1.0 for b in config.decay.weights}
    return {
        "w/o decay (λ = 0)": replace(config, decay=config.decay.model_copy(
            update={"decay_per_day": 0.0})),
        "uniform weights": replace(config, decay=config.decay.model_copy(
            update={"weights": uniform})),
    }


# --- one run ---------------------------------------------------------------------------------

@dataclass
class ReplayInputs:
    """A log cut at ``cut``: the stream before it and the future after it."""

    dataset: str
    level: str
    events: list[Interaction]
    cut: float
    step: float
    future_events: list[Interaction] | None = None

    @property
    def label(self) -> str:
        return f"{self.dataset}-{self.level}" if self.dataset == "taobao" else self.dataset

    def split(self) -> tuple[list[Interaction], list[Interaction]]:
        before = [e for e in self.events if e.t < self.cut]
        after = (list(self.future_events) if self.future_events is not None
                 else [e for e in self.events if self.cut <= e.t < self.cut + self.step])
        return before, after


def offline_run(inputs: ReplayInputs, config: SystemConfig, out_dir: Path,
                system_lists: Mapping[str, Sequence[str]] | None = None,
                system_name: str = "stylestream (offline twin)",
                ablations: bool = True, seed: int = 0,
                ranker_path: Path | None = None,
                reference_decay: DecaySettings | None = None,
                dissimilarity: Dissimilarity | None = None,
                extra_ablations: Callable[[Sequence[str]], Mapping[str, Mapping]] | None = None,
                no_ranker: bool = False) -> ReplayTable:
    """Train the ranker on the log before the cut, build the offline twin's lists (unless the
    live ``system_lists`` are given), the references and the ablations; score them all on the
    same shoppers. The own-history reference is Eq. 3 with ``reference_decay`` (the
    settings' λ, default the paper's), whatever λ the system chose on validation.
    ``extra_ablations(users)`` adds more ablation rows (item content:
    :mod:`evaluation.replay_content`). ``no_ranker``: the system has no final ranker (a log
    too short to train one, :class:`NoRankerData`); its lists are the recall strength order
    and the ablation rows are left out."""
    before, after = inputs.split()
    future = future_of(before, after)
    state = StreamState(reference_decay or DecaySettings())
    state.apply_all(before)
    users = sorted(u for u in future.targets if u in state.last_event)
    if ranker_path is None and not no_ranker:
        ranker_path = system_training(inputs, config, out_dir)
    info = load_ranker(ranker_path).extra if ranker_path is not None else {}
    lists: dict[str, Mapping[str, Sequence[str]]] = {}
    if system_lists is not None:
        lists[system_name] = system_lists
        lists["stylestream (offline twin)"] = offline_lists(before, inputs.cut, users, config,
                                                            system_chain(ranker_path, config))
    else:
        lists[system_name] = offline_lists(before, inputs.cut, users, config,
                                           system_chain(ranker_path, config))
    lists.update(reference_lists(before, state, inputs.cut, users, trend_window=inputs.step,
                                 seed=seed))
    if ablations and ranker_path is not None:
        lists["w/o final ranker (recall strength order)"] = offline_lists(
            before, inputs.cut, users, config, decay_covis_chain(config.parts))
        scored = scored_at(before, inputs.cut, users, config,
                           ranker_chain(ranker_path, config.parts))
        plain = replace(config.diversity, explore_weight=0.0)
        lists["no explore term (w = 0: order by chance of a hit)"] = compose_lists(
            scored, LONG_K, config.parts.facts, plain)
        lists["at most 3 own items per list (STYLESTREAM_MAX_REPEATS=3, w = 0)"] = \
            compose_lists(scored, LONG_K, config.parts.facts, replace(plain, max_repeats=3))
        # the lists before repeat-aware recall: no own item is recalled by any source
        discovery = replace(config, recall=replace(
            config.recall, history_candidates=0, exclude_behaviors=frozenset(BEHAVIORS)))
        lists["discovery only (no history recall, previous lists)"] = offline_lists(
            before, inputs.cut, users, discovery, decay_covis_chain(discovery.parts))
        for name, variant in ablation_configs(config).items():
            path = out_dir / f"{inputs.label}_ranker_{len(lists)}.pt"
            train_and_save(before, inputs.cut, inputs.step, variant, path, version=name)
            lists[name] = offline_lists(before, inputs.cut, users, variant,
                                        ranker_chain(path, variant.parts))
            path.unlink(missing_ok=True)
        if extra_ablations is not None:
            lists.update(extra_ablations(users))
    n_items = len({e.item for e in before})
    table = make_table(inputs.label, lists, future, users, dissimilarity, n_items)
    table.info.update({
        "cut (T)": datetime.fromtimestamp(inputs.cut, UTC).isoformat(),
        "horizon": f"{inputs.step / 86400:g} days",
        "events before T": len(before), "shoppers scored": len(users),
        "shoppers with a new-to-shopper target": sum(bool(future.new[u]) for u in users),
    })
    if ranker_path is None:
        table.info["final ranker"] = ("none: the log is too short to train it (the lists are "
                                      "the recall strength order)")
    else:
        table.info.update({
            "ranker validation NDCG@5 (cut T − horizon)": round(float(info["valid_ndcg5"]),
                                                                 4),
            "ranker training groups": info["train_groups"]})
    return table


def system_training(inputs: ReplayInputs, config: SystemConfig, out_dir: Path) -> Path:
    """Train the final ranker on the stream before the cut; its checkpoint path."""
    before, _ = inputs.split()
    path = out_dir / f"{inputs.label}_ranker.pt"
    train_and_save(before, inputs.cut, inputs.step, config, path,
                   version=f"next-event-{inputs.label}")
    return path


def write_table(table: ReplayTable, system: str, out_dir: Path, command: str) -> Path:
    """``replay_<label>.md`` and ``.json`` (means, per-row diversity, paired intervals)."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    md = out_dir / f"replay_{table.label}.md"
    md.write_text(markdown(table, system, command), encoding="utf-8")
    payload = {"label": table.label, "command": command, "info": table.info, "notes": table.notes,
               "summary": table.summary(),
               "versus_system": {k: {m: list(v) for m, v in d.items()}
                                 for k, d in table.versus(system).items()}}
    md.with_suffix(".json").write_text(json.dumps(payload, indent=1, default=str),
                                       encoding="utf-8")
    return md


#: λ values (per day) the replay tries on its validation cut: the paper's 0.05, a slower decay,
#: and none (what all-time popularity and raw counts measure)
DECAY_GRID: tuple[float, ...] = (0.05, 0.01, 0.0)


def select_decay(inputs: ReplayInputs, config: SystemConfig, out_dir: Path,
                 grid: Sequence[float] = DECAY_GRID) -> tuple[SystemConfig, Path, dict]:
    """Choose λ on the validation cut T − horizon (never on anything after T): for each λ of
    ``grid`` train the final ranker on the stream before T (its cuts end at T − horizon),
    build the offline twin's lists at T − horizon and score them on [T − horizon, T); keep the
    λ with the best HR@5 + NDCG@5 (ties: the first of the grid). Returns the config, the
    ranker checkpoint and the validation scores per λ."""
    before, _ = inputs.split()
    valid_cut = inputs.cut - inputs.step
    earlier = [e for e in before if e.t < valid_cut]
    later = [e for e in before if e.t >= valid_cut]
    future = future_of(earlier, later)
    state = StreamState(config.decay)
    state.apply_all(earlier)
    users = sorted(u for u in future.targets if u in state.last_event)
    scores: dict[float, dict[str, float]] = {}
    best: tuple[float, float, SystemConfig, Path] | None = None
    for k, lam in enumerate(grid):
        variant = replace(config, decay=config.decay.model_copy(update={"decay_per_day": lam}))
        path = out_dir / f"{inputs.label}_ranker_decay{k}.pt"
        train_and_save(before, inputs.cut, inputs.step, variant, path,
                       version=f"next-event-{inputs.label}-decay{lam:g}")
        # λ is judged on the accuracy lists (w = 0); w is chosen after it (explore_tradeoff)
        plain = replace(variant, diversity=replace(variant.diversity, explore_weight=0.0))
        lists = offline_lists(earlier, valid_cut, users, plain, ranker_chain(path, plain.parts))
        metrics = list_metrics(lists, future, users)
        hr, ndcg = float(np.nanmean(metrics["HR@5"])), float(np.nanmean(metrics["NDCG@5"]))
        scores[lam] = {"HR@5": round(hr, 4), "NDCG@5": round(ndcg, 4)}
        if best is None or hr + ndcg > best[0] + 1e-9:
            best = (hr + ndcg, lam, variant, path)
    assert best is not None
    _, lam, chosen, path = best
    final = out_dir / f"{inputs.label}_ranker.pt"
    path.replace(final)
    for k in range(len(grid)):
        (out_dir / f"{inputs.label}_ranker_decay{k}.pt").unlink(missing_ok=True)
    return chosen, final, {"decay_per_day": lam, "validation": scores}
