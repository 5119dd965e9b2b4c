"""The rerank seam: the ``Scorer`` interface, the request it takes and the records it returns.

One small interface (the RecBole habit): the decayed-score/co-visitation scorer, the fusion
network, the paper-002 rule stages and the final ranker all take one :class:`RerankRequest` (a
micro-batch of shoppers, their candidates, the popularity snapshot and the clock) and return
scored candidates with reasons. The worker never branches on which scorer it holds, and offline
evaluation calls the same scorers.

Optional abilities are typed protocols, checked with ``isinstance``, never probed with
``getattr``: :class:`Reloadable` (a newer model file goes live without a restart),
:class:`AcceptsNewItems` (catalog items onboarded while serving) and :class:`FusesItems` (the
network whose fused item vectors fill the feature store). Stages are composed once, in order,
by :func:`serving.pipeline.build_chain` into a :class:`serving.chain.ScorerChain`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from models.catalog import CatalogItem
    from models.fusion import FusionRanker, ItemFeatures


@dataclass
class Candidate:
    """An item recalled for a shopper, with where it came from.

    ``sources`` maps a recall source (``"covisit"``, ``"trending"``, ``"content"``, ...) to the
    strength it gave and, when an item of the shopper's history drove it, that item's id.
    """

    item_id: str
    recall_score: float = 0.0
    sources: dict[str, tuple[float, str | None]] = field(default_factory=dict)


@dataclass
class ShopperContext:
    """What the ranker knows about a shopper at request time (read from Redis).

    ``scores``: decayed scores S(u,i,T) of the shopper's strongest items (Eq. 3, closed form).
    ``behaviors``: the strongest behaviour seen per item (for reasons: "you carted").
    ``last_touch``: the newest event time per item; ``last_event_time``: the shopper's newest
    event time (the reference the ranker's recency features are measured from).
    """

    user_id: str
    now: float
    scores: dict[str, float] = field(default_factory=dict)
    behaviors: dict[str, str] = field(default_factory=dict)
    purchased: set[str] = field(default_factory=set)
    last_touch: dict[str, float] = field(default_factory=dict)
    last_event_time: float | None = None
    trendiness: float | None = None
    gender: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass
class ScoredItem:
    item_id: str
    score: float
    reasons: list[str] = field(default_factory=list)


class LazyReasonsItem(ScoredItem):
    """A :class:`ScoredItem` whose reasons are written when first read: a micro-batch scores
    ~100 candidates per shopper and publishes five, so the other reasons are never written.
    Subclasses say how in :meth:`_write_reasons` from ``source``, the arguments kept for it.
    Equal (``==``) to the eager item."""

    _reasons: list[str] | None = None

    def __init__(self, item_id: str, score: float, source: tuple) -> None:
        self.item_id, self.score, self._source = item_id, score, source

    def _write_reasons(self) -> list[str]:
        raise NotImplementedError

    @property  # type: ignore[override]
    def reasons(self) -> list[str]:
        if self._reasons is None:
            self._reasons = self._write_reasons()
        return self._reasons

    @reasons.setter
    def reasons(self, value: list[str]) -> None:
        self._reasons = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScoredItem):
            return NotImplemented
        return (self.item_id, self.score, self.reasons) == (other.item_id, other.score,
                                                            other.reasons)

    __hash__ = None  # type: ignore[assignment]  # mutable, like ScoredItem


@dataclass(frozen=True)
class PopularitySnapshot:
    """The decayed popularity of the items a micro-batch may show, read once per batch (the
    rule stage's NormPop and trendiness, the final ranker's popularity features)."""

    values: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, popularity: Mapping[str, float],
           trending: Iterable[tuple[str, float]]) -> PopularitySnapshot:
        """The batch's snapshot: its items' decayed popularity, with the trending list's own
        values where it has them (both read at the same time)."""
        return cls({**popularity, **dict(trending)})


@dataclass(frozen=True)
class RerankRequest:
    """One micro-batch for :meth:`Scorer.score`: ``candidates[k]`` are ``shoppers[k]``'s.

    ``popularity``: the snapshot read for this batch (empty when no stage reads it);
    ``now``: the time the state was read at (the wall clock, or the batch's newest event time
    when a historical log is replayed)."""

    shoppers: Sequence[ShopperContext]
    candidates: Sequence[Sequence[Candidate]]
    now: float
    popularity: PopularitySnapshot = field(default_factory=PopularitySnapshot)

    def __post_init__(self) -> None:
        if len(self.shoppers) != len(self.candidates):
            raise ValueError(f"{len(self.shoppers)} shoppers but {len(self.candidates)} "
                             "candidate lists: score() needs one candidate list per shopper")


@runtime_checkable
class Scorer(Protocol):
    """Ranks a micro-batch: ``score(request)[k]`` scores ``request.candidates[k]``.

    Implementations return one :class:`ScoredItem` per candidate they keep (any order); the
    worker sorts and cuts to the Top-5. ``version`` goes into every published message
    (``model_version``). ``reads_popularity``: whether the stage reads
    ``request.popularity`` (when no stage of a chain does, the worker skips reading item
    popularity per micro-batch).
    """

    version: str
    reads_popularity: bool

    def score(self, request: RerankRequest) -> list[list[ScoredItem]]: ...


@runtime_checkable
class Reloadable(Protocol):
    """A stage whose model file can change while serving."""

    def maybe_reload(self) -> bool:
        """Load a newer model if its file changed; True when the model in use changed (a
        broken new file is logged and the old model kept)."""
        ...


@runtime_checkable
class ScoresChances(Protocol):
    """A stage that can score with *chances of a hit* (a calibrated final ranker): when
    ``calibrated`` is true its scores are probabilities, and the final list is composed per
    shopper between repeats and new items (:mod:`serving.explore`) instead of by score order."""

    calibrated: bool


@dataclass(frozen=True)
class NewItems:
    """Catalog items onboarded while serving (:mod:`serving.catalog_updates`).

    ``features``: their per-modality vectors when the feature store could be extended with
    them, else ``None`` (the items then join the rule catalog only)."""

    items: Sequence[CatalogItem]
    features: ItemFeatures | None = None


@runtime_checkable
class AcceptsNewItems(Protocol):
    """A stage that takes new catalog items without a restart, in two steps: the heavy one
    (may run in a worker thread; reads only) returns the cheap one, which the worker runs on
    its event loop between two micro-batches."""

    def prepare_items(self, new: NewItems) -> Callable[[], None]: ...


@runtime_checkable
class FusesItems(Protocol):
    """A stage built on the network that fused the feature store's item vectors (new items
    must be fused by the same network to be comparable)."""

    def item_fuser(self) -> FusionRanker: ...
