"""The scorer chain the rerank worker ranks through: stages composed once, in order.

A chain is built by :func:`serving.pipeline.build_chain` (or, for a single scorer,
:meth:`ScorerChain.of`) and never edited afterwards: each stage wraps the one before it
(``stages[k + 1]`` scores on top of ``stages[k]``), the last one answers
:meth:`ScorerChain.score`. What changes while serving changes *inside* a stage, through the
typed abilities of :mod:`serving.scorer`: a newer model file (:class:`Reloadable`) or new
catalog items (:class:`AcceptsNewItems`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from serving.scorer import (
    AcceptsNewItems,
    FusesItems,
    NewItems,
    Reloadable,
    RerankRequest,
    ScoredItem,
    Scorer,
    ScoresChances,
)
from streams.runtime import collector_paused

if TYPE_CHECKING:
    from models.fusion import FusionRanker


@dataclass(frozen=True)
class ScorerChain:
    """The stages from the inside out (base scorer first, final ranker last); a
    :class:`~serving.scorer.Scorer` and :class:`~serving.scorer.Reloadable` itself."""

    stages: tuple[Scorer, ...]

    def __post_init__(self) -> None:
        if not self.stages:
            raise ValueError("a scorer chain needs at least one stage")

    @classmethod
    def of(cls, scorer: Scorer) -> ScorerChain:
        """A chain of one stage (a scorer that wraps no other)."""
        return cls((scorer,))

    @property
    def top(self) -> Scorer:
        """The stage that answers :meth:`score` (it wraps all the others)."""
        return self.stages[-1]

    @property
    def version(self) -> str:
        return self.top.version

    @property
    def reads_popularity(self) -> bool:
        return any(stage.reads_popularity for stage in self.stages)

    def score(self, request: RerankRequest) -> list[list[ScoredItem]]:
        """The answering stage's scores, with the cyclic collector paused for the micro-batch
        (:func:`streams.runtime.collector_paused`: it would walk every record the batch keeps
        alive, again and again)."""
        with collector_paused():
            return self.top.score(request)

    @property
    def calibrated(self) -> bool:
        """True when the answering stage scores with chances of a hit (:class:`ScoresChances`)."""
        return isinstance(self.top, ScoresChances) and self.top.calibrated

    def maybe_reload(self) -> bool:
        """Every reloadable stage, inside out, checks its model file; True when any changed
        (the versions of the stages above follow, they are derived from the ones below)."""
        changed = False
        for stage in self.stages:
            if isinstance(stage, Reloadable):
                changed = stage.maybe_reload() or changed
        return changed

    def item_fuser(self) -> FusionRanker | None:
        """The network of the stage that fuses item vectors, when the chain has one."""
        return next((stage.item_fuser() for stage in self.stages
                     if isinstance(stage, FusesItems)), None)

    def onboarding_steps(self, new: NewItems) -> list[Callable[[], None]]:
        """The heavy half of onboarding ``new`` in every stage that takes new items (any
        thread); run the returned steps, in order, on the event loop to apply it."""
        return [stage.prepare_items(new) for stage in self.stages
                if isinstance(stage, AcceptsNewItems)]
