"""Train/test splits for offline evaluation (paper 000 §4.1.1).

- :func:`per_user_split`: the paper's split "by user dimension: 80% ... training, 20% ... test".
  Read as: each user's events in time order, the first 80% train and the last 20% test
  (chronological, so no future event trains a model that is tested on its past). A user with
  n ≥ 2 events keeps ``round(0.8 n)`` of them in training, clamped to [1, n − 1]; a user with a
  single event is all training. "Stratified by user" is satisfied because every user appears
  in both parts in the same proportion.
- :func:`temporal_split`: one global cut (a time, or a quantile of all event times); train is
  strictly before the cut, test at or after it — the way a deployed system meets the future.
  Test users without any training event are cold users; they are kept in ``test`` and counted
  in ``info`` (the evaluation harness scores only users it has history for).

:func:`cold_item_share` reports how much of the test set is made of items never seen in
training (the H&M question: a pure-CF model cannot rank those at all).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.datasets import Interaction


class SplitError(ValueError):
    """A split was asked with impossible settings (empty data, a fraction outside (0, 1))."""


@dataclass
class Split:
    """Train and test interactions, each sorted by time, plus what the split did."""

    train: list[Interaction]
    test: list[Interaction]
    name: str
    info: dict[str, float | int | str] = field(default_factory=dict)


def _require(interactions: Sequence[Interaction]) -> None:
    if not interactions:
        raise SplitError("cannot split an empty interaction list")


def per_user_split(interactions: Sequence[Interaction], train_frac: float = 0.8) -> Split:
    """Each user's first ``train_frac`` of events (by time) train, the rest test."""
    _require(interactions)
    if not 0.0 < train_frac < 1.0:
        raise SplitError(f"train_frac must lie in (0, 1), got {train_frac}")
    by_user: dict[str, list[Interaction]] = defaultdict(list)
    for e in sorted(interactions, key=lambda e: e.t):
        by_user[e.user].append(e)
    train: list[Interaction] = []
    test: list[Interaction] = []
    for events in by_user.values():
        n = len(events)
        cut = n if n == 1 else min(max(round(train_frac * n), 1), n - 1)
        train.extend(events[:cut])
        test.extend(events[cut:])
    train.sort(key=lambda e: e.t)
    test.sort(key=lambda e: e.t)
    return Split(train, test, f"peruser{round(train_frac * 100)}",
                 {"train_frac": train_frac, "n_train": len(train), "n_test": len(test)})


def temporal_split(interactions: Sequence[Interaction], *, at: float | None = None,
                   quantile: float | None = 0.8) -> Split:
    """Global cut at time ``at``, or (if ``at`` is None) at the ``quantile`` of event times."""
    _require(interactions)
    if at is None:
        if quantile is None or not 0.0 < quantile < 1.0:
            raise SplitError(f"quantile must lie in (0, 1), got {quantile}")
        at = float(np.quantile(np.fromiter((e.t for e in interactions), np.float64), quantile))
    ordered = sorted(interactions, key=lambda e: e.t)
    train = [e for e in ordered if e.t < at]
    test = [e for e in ordered if e.t >= at]
    if not train or not test:
        raise SplitError(f"cut at t={at} leaves an empty side ({len(train)} train, "
                         f"{len(test)} test events)")
    train_users = {e.user for e in train}
    test_users = {e.user for e in test}
    return Split(train, test, "temporal", {
        "cut": at, "quantile": quantile if quantile is not None else "",
        "n_train": len(train), "n_test": len(test),
        "cold_users": len(test_users - train_users), "test_users": len(test_users)})


def cold_item_share(split: Split) -> dict[str, float]:
    """Share of test items, and of test events, whose item never occurs in training."""
    seen = {e.item for e in split.train}
    test_items = {e.item for e in split.test}
    if not test_items:
        return {"items": 0.0, "events": 0.0}
    cold_events = sum(1 for e in split.test if e.item not in seen)
    return {"items": len(test_items - seen) / len(test_items),
            "events": cold_events / len(split.test)}
