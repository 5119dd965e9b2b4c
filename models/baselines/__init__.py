"""Offline baselines behind one interface (:class:`models.baselines.base.Recommender`).

``BASELINES`` maps a table label to a factory; the evaluation harness builds each one fresh per
seed. VBPR takes the item feature matrix (``item_features``), the others ignore it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.baselines.base import BaselineConfig, NotFittedError, Recommender
from models.baselines.bpr import BPRMF
from models.baselines.itemcf import ItemCF
from models.baselines.lightgcn import LightGCN
from models.baselines.neumf import NeuMF
from models.baselines.popularity import Popularity, RandomScores
from models.baselines.vbpr import VBPR

Factory = Callable[[BaselineConfig, "np.ndarray | None"], Recommender]

BASELINES: dict[str, Factory] = {
    "Random": lambda cfg, feats: RandomScores(),
    "Pop": lambda cfg, feats: Popularity(),
    "ItemCF": lambda cfg, feats: ItemCF(),
    "BPR-MF": lambda cfg, feats: BPRMF(cfg),
    "NeuMF": lambda cfg, feats: NeuMF(cfg),
    "VBPR": lambda cfg, feats: VBPR(feats, cfg),
    "LightGCN": lambda cfg, feats: LightGCN(cfg),
}

__all__ = ["BASELINES", "BPRMF", "BaselineConfig", "ItemCF", "LightGCN", "NeuMF", "NotFittedError",
           "Popularity", "RandomScores", "Recommender", "VBPR"]
