"""Evaluation protocols: which split, which users, which items count (paper 000 §4.1.1, §4.2).

:func:`prepare` loads a dataset, splits it (``peruser``: each user's chronological 80/20;
``temporal``: one global cut at the 80% quantile of event times) and derives, for every user
that has training history and at least one *new* test item:

- ``seen[b]``: the user's training items (masked in full ranking),
- ``relevant[b]``: the user's test items not among them (the positives),
- ``interacted[b]``: every item the user touched (never drawn as a sampled negative).

Reading of the paper: §4.1.1 only says "80% ... training, 20% ... test" split "by user"; the
positives of Eq. 22 are "items of actual interest (clicked, purchased, etc.)", so every test
behaviour counts, views included. Re-interactions with training items are not targets because
the full-ranking protocol masks training items.

The item vocabulary covers train and test, so items first seen in the test period are ranked
too (and score what a model can give an item it never saw: the H&M cold-item question).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from models.datasets import Interaction, InteractionArrays, Vocabulary, load
from models.splits import Split, cold_item_share, per_user_split, temporal_split

PROTOCOLS: tuple[str, ...] = ("peruser", "temporal")


@dataclass
class EvalData:
    """One dataset under one protocol, integer-coded and ready for every model."""

    dataset: str
    level: str
    protocol: str
    split: Split
    vocab: Vocabulary
    train: InteractionArrays
    users: np.ndarray
    seen: list[np.ndarray]
    relevant: list[np.ndarray]
    interacted: list[np.ndarray]
    train_end: float
    info: dict[str, float | int | str] = field(default_factory=dict)
    #: ``cold[i]``: item i never occurs in training (only content can rank it)
    cold: np.ndarray | None = None

    @property
    def label(self) -> str:
        name = f"{self.dataset}-{self.level}" if self.dataset == "taobao" else self.dataset
        return f"{name}_{self.protocol}"


def make_split(events: list[Interaction], protocol: str, train_frac: float = 0.8) -> Split:
    if protocol == "peruser":
        return per_user_split(events, train_frac)
    if protocol == "temporal":
        return temporal_split(events, quantile=train_frac)
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")


def build(events: list[Interaction], split: Split, *, dataset: str, level: str,
          protocol: str) -> EvalData:
    """Code a split and collect each evaluated user's seen / relevant / interacted items."""
    vocab = Vocabulary.build(events)
    train = InteractionArrays.encode(split.train, vocab)
    test = InteractionArrays.encode(split.test, vocab)
    seen: dict[int, set[int]] = defaultdict(set)
    for u, i in zip(train.users.tolist(), train.items.tolist(), strict=True):
        seen[u].add(i)
    new: dict[int, set[int]] = defaultdict(set)
    for u, i in zip(test.users.tolist(), test.items.tolist(), strict=True):
        if u in seen and i not in seen[u]:
            new[u].add(i)
    users = np.array(sorted(new), dtype=np.int64)
    if users.size == 0:
        raise ValueError(f"{dataset}/{protocol}: no user has both training history and a new "
                         "test item; use more users (--max-users)")

    def arr(s: set[int]) -> np.ndarray:
        return np.array(sorted(s), dtype=np.int64)

    cold = cold_item_share(split)
    info: dict[str, float | int | str] = {
        "events": len(events), "users": vocab.n_users, "items": vocab.n_items,
        "train_events": len(split.train), "test_events": len(split.test),
        "evaluated_users": int(users.size),
        "cold_test_items": round(cold["items"], 4), "cold_test_events": round(cold["events"], 4),
        **{f"split_{k}": v for k, v in split.info.items() if k not in ("n_train", "n_test")},
    }
    return EvalData(
        dataset=dataset, level=level, protocol=protocol, split=split, vocab=vocab, train=train,
        users=users, seen=[arr(seen[u]) for u in users], relevant=[arr(new[u]) for u in users],
        interacted=[arr(seen[u] | new[u]) for u in users],
        train_end=float(train.t.max()), info=info,
        cold=~np.isin(np.arange(vocab.n_items), train.items))


def prepare(dataset: str, protocol: str, *, level: str = "category",
            max_users: int | None = None, root: str | os.PathLike[str] | None = None,
            train_frac: float = 0.8) -> EvalData:
    """Load ``dataset`` (``taobao`` at ``level``, or ``hm``) and apply ``protocol``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")
    events = load(dataset, root, level=level, max_users=max_users)
    split = make_split(events, protocol, train_frac)
    return build(events, split, dataset=dataset, level=level if dataset == "taobao" else "item",
                 protocol=protocol)
