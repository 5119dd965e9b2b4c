"""Item content in the replay: the fusion network (paper 000 Eq. 13–20) and its features, built
the way a deployment builds them, for the live workers and the offline twin alike.

Where a data set has content (H&M: article images and ``articles.csv`` text), the replay's
system is the full chain:

1. **Features**: the articles of the events before T are imported and encoded once with the
   product's extractor (:func:`evaluation.content.hm_store`: EfficientNet-Lite0 + MiniLM,
   ``stylestream features``' code), cached under ``var/eval/hm-<hash of the items>/``.
2. **Fusion network**: ``stylestream train --events … --features … --at …`` (the production
   command, as a subprocess) on the events before the *first training cut of the final ranker*
   (T − horizon − ``training_cuts`` · spacing). The ranker learns how far to trust the
   network's score from cuts after that time, so the network must not have seen the events
   that label those cuts (trained on everything before T it would score the ranker's training
   targets from memory, and the ranker would learn to trust it blindly). The same network
   serves at T. ``stylestream train`` re-fuses the store with the trained network, so content
   recall (the store's FAISS neighbours) uses its fused vectors, as online.
3. **Served**: ``stylestream rerank --catalog C --features F --checkpoint M --ranker R
   --no-rules``: recall with content neighbours, the fusion network as the chain's base score
   (the ranker's ``base_score`` pair feature, beside ``log_content``, the content-recall
   strength), the learned final ranker, and the diversity step with the catalog's titles,
   colours, categories and visual vectors. The offline twin builds the same objects
   (:class:`serving.fusion_scorer.FusionScorer`, ``FeatureStore.neighbours``,
   :func:`serving.pipeline.item_facts`) from the same files.

Ablation rows (offline twin, each with its own retrained final ranker):

- **no pair features**: the ranker reads only what the chain below it gives (the base score and
  the content-recall strength); every other pair feature is zero. Any data set.
- **no images** / **no text** (content data sets): the fusion network trained and served on a
  store whose visual vectors are removed (every item image-less, the product's path for an item
  without a picture) or whose text vectors are zero (:func:`evaluation.fusion_rerank.ablated`).

Everything is cached per (feature store version, fusion cut, λ, variant, settings) under the
store's folder, so a rerun only replays.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path

from evaluation.content import DEFAULT_CACHE, hm_store
from evaluation.fusion_rerank import ablated
from evaluation.replay import (
    Parts,
    ReplayInputs,
    SystemConfig,
    offline_lists,
    ranker_chain,
    train_and_save,
)
from models.datasets import Interaction
from serving.pair_features import FEATURES
from streams.config import DecaySettings

log = logging.getLogger(__name__)

#: data sets whose items have images and text
CONTENT_DATASETS: tuple[str, ...] = ("hm",)
#: modality ablations: ``evaluation.fusion_rerank.ablated`` name → table row
MODALITY_ROWS: dict[str, str] = {"visual": "no images (fusion network and store without "
                                           "image vectors)",
                                 "text": "no text (fusion network and store without text "
                                         "vectors)"}
NO_PAIR_FEATURES = ("no pair features (final ranker on the chain's score and content "
                    "strength only)")
#: the columns the "no pair features" ranker keeps: what the chain below it gives
CHAIN_COLUMNS: tuple[int, ...] = (FEATURES.index("base_score"), FEATURES.index("log_content"))


@dataclass(frozen=True)
class FusionSettings:
    """How the replay trains the fusion network (``stylestream train`` options). BPR: on
    purchases-only H&M most decayed scores are near zero, and the MSE of Eq. 21 learns little
    ranking from them (``stylestream train --help``)."""

    loss: str = "bpr"
    epochs: int = 30
    patience: int = 5
    negatives: int = 4
    seed: int = 0


def has_content(dataset: str) -> bool:
    return dataset in CONTENT_DATASETS


def fusion_cut(cut: float, step: float, config: SystemConfig) -> float:
    """The first training cut of the final ranker: the fusion network learns from the events
    before it only."""
    return cut - step - config.training_cuts * config.cut_spacing * step


@dataclass
class ContentSystem:
    """The files a rerank worker serves (catalog, feature store folder, fusion checkpoint) and
    the offline twin's parts built from the same files."""

    catalog: Path
    features: Path
    checkpoint: Path
    ablate: str | None = None

    def rerank_args(self) -> list[str]:
        """The ``stylestream rerank`` flags that serve this system (besides ``--ranker``)."""
        return ["--catalog", str(self.catalog), "--features", str(self.features),
                "--checkpoint", str(self.checkpoint), "--no-rules"]

    @cached_property
    def store(self):
        from models.feature_store import FeatureStore

        return FeatureStore.load(self.features)

    def parts(self) -> Parts:
        """The offline twin's chain: what ``serving.pipeline.build_worker`` builds from
        :meth:`rerank_args` (its serving options, content index and item facts)."""
        from serving.pipeline import ServingOptions, item_facts, load_catalog

        options = ServingOptions(catalog_dir=str(self.catalog), checkpoint=str(self.checkpoint),
                                 features=str(self.features), rules=False,
                                 follow_catalog=False)
        vectors = dict(zip(self.store.ids, self.store.visual, strict=True))
        facts = item_facts(load_catalog(options), vectors)
        return Parts(options=options, content=self.store.neighbours, facts=facts)


def _key(*parts: object) -> str:
    return hashlib.sha1(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()[:12]


def _write_events(events: Sequence[Interaction], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "behavior", "timestamp"])
        for e in events:
            writer.writerow([e.user, e.item, e.behavior, repr(float(e.t))])


def _ablated_store(base, ablate: str | None, out: Path) -> None:
    """Write ``base`` (a loaded store) with one modality removed as the first version under
    ``out`` (the folder ``stylestream train --features`` reads and adds its re-fused version
    to)."""
    from models.feature_store import FeatureStore

    features = ablated(base.features(), ablate)
    meta = {**base.meta, "version": f"{base.version}-{ablate or 'full'}",
            "ablated": ablate}
    store = FeatureStore(out / f"features-{meta['version']}", meta, features.ids,
                         features.visual.numpy(), features.text.numpy(),
                         features.present.numpy(), base.fused)
    store.save()


def build_content(inputs: ReplayInputs, config: SystemConfig, *, ablate: str | None = None,
                  decay: DecaySettings | None = None,
                  root: str | os.PathLike[str] | None = None,
                  cache: str | os.PathLike[str] = DEFAULT_CACHE,
                  settings: FusionSettings = FusionSettings(),
                  progress: bool = True) -> ContentSystem | None:
    """The content system of ``inputs`` (None where the data set has no content): features of
    the items before T, the fusion network trained on the events before :func:`fusion_cut`
    with the behaviour weights and λ of ``decay`` (default ``config``'s; cached)."""
    if not has_content(inputs.dataset):
        return None
    before, _ = inputs.split()
    items = sorted({e.item for e in before})
    base = hm_store(items, root, cache, progress)
    home = base.path.parent.parent          # <cache>/hm-<hash>/ (catalog/, features/)
    start = fusion_cut(inputs.cut, inputs.step, config)
    train = [e for e in before if e.t < start]
    if not train:
        raise ValueError("the log before the cut is too short to train the fusion network "
                         "before the final ranker's first training cut")
    decay = decay or config.decay
    key = _key(base.version, start, len(train), decay.decay_per_day, decay.weights, ablate,
               asdict(settings))
    where = home / "replay" / f"{ablate or 'full'}-{key}"
    system = ContentSystem(home / "catalog", where / "features", where / "model" / "model.pt",
                           ablate)
    if system.checkpoint.is_file():
        return system
    _ablated_store(base, ablate, system.features)
    events = where / "events.csv"
    _write_events(train, events)
    command = [sys.executable, "-m", "scripts.cli", "train", "--events", str(events),
               "--features", str(system.features), "--out", str(system.checkpoint.parent),
               "--at", repr(start), "--decay-per-day", repr(decay.decay_per_day),
               "--loss", settings.loss, "--epochs", str(settings.epochs),
               "--patience", str(settings.patience), "--negatives", str(settings.negatives),
               "--seed", str(settings.seed)]
    env = dict(os.environ, STYLESTREAM_WEIGHTS=json.dumps(dict(decay.weights)))
    log.info("training the fusion network (%s): %s", ablate or "full", " ".join(command[2:]))
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise ValueError(f"`stylestream train` failed for the replay's fusion network: "
                         f"{done.stderr.strip()[-2000:]}")
    return system


def with_content(config: SystemConfig, system: ContentSystem | None) -> SystemConfig:
    """``config`` whose chain is the content system's (unchanged without content)."""
    return config if system is None else replace(config, parts=system.parts())


def content_ablations(inputs: ReplayInputs, config: SystemConfig, out_dir: Path,
                      users: Sequence[str], *, fusion_decay: DecaySettings | None = None,
                      root: str | os.PathLike[str] | None = None,
                      cache: str | os.PathLike[str] = DEFAULT_CACHE,
                      progress: bool = True) -> dict[str, Mapping[str, Sequence[str]]]:
    """The offline twin's lists of the ablation rows (``config``: the system as run, its
    chain included; ``fusion_decay``: the decay its fusion network was trained with): no pair
    features, and on content data sets no images / no text."""
    before, _ = inputs.split()
    rows: dict[str, Mapping[str, Sequence[str]]] = {}
    variants: list[tuple[str, SystemConfig]] = [
        (NO_PAIR_FEATURES, replace(config, parts=replace(config.parts, keep=CHAIN_COLUMNS)))]
    if has_content(inputs.dataset):
        for ablate, name in MODALITY_ROWS.items():
            system = build_content(inputs, config, ablate=ablate, decay=fusion_decay,
                                   root=root, cache=cache, progress=progress)
            variants.append((name, with_content(config, system)))
    for k, (name, variant) in enumerate(variants):
        path = out_dir / f"{inputs.label}_ranker_content{k}.pt"
        train_and_save(before, inputs.cut, inputs.step, variant, path, version=name)
        rows[name] = offline_lists(before, inputs.cut, users, variant,
                                   ranker_chain(path, variant.parts))
        path.unlink(missing_ok=True)
    return rows


def content_note(dataset: str) -> str:
    """The line under a replay table that says what item content the system had."""
    if has_content(dataset):
        return ("Item content: the fusion network (paper 000 Eq. 13–20, images + text) is the "
                "chain's base score and content recall runs on its re-fused feature store; it "
                "is trained on the events before the final ranker's first training cut "
                "(T − horizon − 5 horizons), so that the ranker's training targets are unseen "
                "by it. Workers: `stylestream rerank --catalog C --features F --checkpoint M "
                "--ranker R --no-rules`.")
    return ("Item content: none in this data set (Taobao has no images or text), so the "
            "system has no fusion network or content recall and there are no \"no images\" / "
            "\"no text\" rows; \"no pair features\" is the ranker on the chain's score alone "
            "(the recall strength).")
