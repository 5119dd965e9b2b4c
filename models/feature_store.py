"""Offline item features and the ANN index over them (paper 000 §3.3.5 "pre-calculated offline
and stored in an efficient vector database"; docs/design.md "Ranking").

A feature store is a versioned directory ``<out>/features-<version>/`` holding, row-aligned with
``ids.json``:

- ``visual.npy``  ``[N,D]`` float32: GAP of the backbone feature map (Eq. 7, before Eq. 8–9),
- ``text.npy``    ``[N,d_h]`` float32: BERT first/last pooled ``T`` (Eq. 10–11, before Eq. 12),
- ``present.npy`` ``[N]`` bool: the item has a readable image (else its visual row is zeros),
- ``items.npy``   ``[N,600]`` float32: fused item vectors (Eq. 13–18) of the network named in
  ``meta.json["fused_by"]`` (a seeded untrained network at extraction, a trained checkpoint
  after :meth:`FeatureStore.refuse`),
- ``index.faiss``: inner product over the L2-normalised fused vectors (= cosine), and
- ``meta.json``: format, version, backbone, weights, text model, dims, counts, timings.

The per-modality vectors are what the fusion network trains on (its heads are trainable); the
fused vectors serve recall. FAISS runs on the GPU when ``faiss`` has GPU support and sees one.
New items arriving online (cold start) are encoded with :func:`encode_items` and appended with
:meth:`FeatureStore.add_items`; they are searchable at once.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from models.catalog import CatalogItem, UnsafeImagePath, image_roots, iter_catalog, resolve_image
from models.fusion import FusionConfig, FusionRanker, ItemFeatures
from models.progress import progress as progress_bar
from models.text import TextEncoder
from models.visual import VisualEncoder, VisualModelError, load_image, preprocess

log = logging.getLogger(__name__)
STORE_FORMAT = "stylestream-features/1"
PREFIX = "features-"


@dataclass
class ExtractConfig:
    """How to encode items. ``weights``: see :func:`models.visual.build_backbone`."""

    backbone: str = "resnet50"
    weights: str | None = None
    text_model: str | None = None
    image_size: int = 224
    variant: str = "paper"
    batch_size: int = 16
    seed: int = 0


@dataclass
class Encoders:
    visual: VisualEncoder
    text: TextEncoder
    config: ExtractConfig

    @classmethod
    def load(cls, config: ExtractConfig) -> Encoders:
        torch.manual_seed(config.seed)
        return cls(VisualEncoder(config.backbone, config.weights).eval(),
                   TextEncoder(config.text_model).eval(), config)


@dataclass
class EncodeStats:
    items: int = 0
    missing_images: int = 0
    image_seconds: float = 0.0
    text_seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        done = self.items - self.missing_images
        return done / self.image_seconds if self.image_seconds else 0.0

    @property
    def texts_per_s(self) -> float:
        return self.items / self.text_seconds if self.text_seconds else 0.0


def item_image(item: CatalogItem, catalog_dir: Path,
               roots: Sequence[Path] | None = None) -> Image.Image | None:
    """The item's picture as RGB, or None when it has none, it cannot be read, or its path
    would leave the catalog (:func:`models.catalog.resolve_image`; logged with the reason).
    ``roots``: the catalog's image roots (default: read from ``catalog_dir``)."""
    if not item.image:
        return None
    try:
        path = resolve_image(catalog_dir, item.image,
                             image_roots(catalog_dir) if roots is None else roots)
    except UnsafeImagePath as exc:
        log.warning("item %s: %s; treated as missing", item.item_id, exc)
        return None
    if not path.is_file():
        return None
    try:
        return load_image(path)
    except VisualModelError as exc:
        log.warning("item %s: %s; treated as missing", item.item_id, exc)
        return None


@torch.no_grad()
def encode_items(items: Sequence[CatalogItem], catalog_dir: str | Path, encoders: Encoders,
                 progress: bool = False) -> tuple[ItemFeatures, EncodeStats]:
    """Per-modality vectors of ``items`` in batches; missing/unreadable images → zero row and
    ``present=False``. Used for the offline store and for cold-start items online."""
    catalog_dir = Path(catalog_dir)
    roots = image_roots(catalog_dir)
    cfg = encoders.config
    transform = preprocess(cfg.variant, cfg.image_size)
    stats = EncodeStats(items=len(items))
    visual = torch.zeros(len(items), encoders.visual.feature_dim)
    present = torch.zeros(len(items), dtype=torch.bool)
    texts = []
    batches = range(0, len(items), cfg.batch_size)
    for start in progress_bar(batches, desc="images", unit="batch", disable=not progress):
        chunk = items[start:start + cfg.batch_size]
        images = [(k, item_image(item, catalog_dir, roots)) for k, item in enumerate(chunk, start)]
        rows = [k for k, image in images if image is not None]
        if rows:
            began = time.perf_counter()
            batch = torch.stack([transform(image) for _, image in images if image is not None])
            visual[rows] = encoders.visual.pooled(batch)
            stats.image_seconds += time.perf_counter() - began
            present[rows] = True
        texts += [item.text() for item in chunk]
    stats.missing_images = int((~present).sum())
    began = time.perf_counter()
    chunks = []
    for start in progress_bar(batches, desc="texts", unit="batch", disable=not progress):
        chunks.append(encoders.text.encode_texts(texts[start:start + cfg.batch_size],
                                                 batch_size=cfg.batch_size))
    stats.text_seconds = time.perf_counter() - began
    text = torch.cat(chunks) if chunks else torch.zeros(0, encoders.text.hidden_dim)
    return ItemFeatures([item.item_id for item in items], visual, text, present), stats


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _new_index(dim: int):
    """Flat inner-product index, moved to the GPUs when faiss-gpu sees any."""
    import faiss

    index = faiss.IndexFlatIP(dim)
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        return faiss.index_cpu_to_all_gpus(index), True
    return index, False


class FeatureStore:
    """One loaded store version: arrays, ids, meta and the FAISS index."""

    def __init__(self, path: Path, meta: dict[str, Any], ids: list[str], visual: np.ndarray,
                 text: np.ndarray, present: np.ndarray, fused: np.ndarray) -> None:
        if len(set(ids)) != len(ids):
            raise ValueError("feature store ids must be unique")
        self.path, self.meta, self.ids = path, meta, list(ids)
        self.visual, self.text = visual.astype(np.float32), text.astype(np.float32)
        self.present, self.fused = present.astype(bool), fused.astype(np.float32)
        self.rows = {item: row for row, item in enumerate(self.ids)}
        self._build_index()

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    def _build_index(self) -> None:
        self.index, self.on_gpu = _new_index(self.fused.shape[1])
        if len(self.ids):
            self.index.add(_normalised(self.fused))

    # ---- reading ---------------------------------------------------------------------------
    def features(self) -> ItemFeatures:
        """Per-modality tensors for training / scoring."""
        return ItemFeatures(list(self.ids), torch.from_numpy(self.visual.copy()),
                            torch.from_numpy(self.text.copy()),
                            torch.from_numpy(self.present.copy()))

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine top-k of raw query vectors ``[Q,600]``: (scores, rows); rows −1 = none."""
        k = max(1, min(k, len(self.ids)))
        return self.index.search(_normalised(np.atleast_2d(vectors)), k)

    def neighbours(self, item_ids: Sequence[str], k: int = 10
                   ) -> dict[str, list[tuple[str, float]]]:
        """For each item, its ``k`` most similar other items with cosine scores, best first.

        Items the store does not know (no features yet) get an empty list, so recall can pass a
        shopper's whole history; :meth:`add_items` makes new items known."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        out: dict[str, list[tuple[str, float]]] = {item: [] for item in item_ids}
        known = [item for item in dict.fromkeys(item_ids) if item in self.rows]
        if not known:
            return out
        scores, rows = self.search(self.fused[[self.rows[i] for i in known]], k + 1)
        for item, score_row, row_row in zip(known, scores, rows, strict=True):
            hits = [(self.ids[r], float(s)) for s, r in zip(score_row, row_row, strict=True)
                    if r >= 0 and self.ids[r] != item]
            out[item] = hits[:k]
        return out

    # ---- writing ---------------------------------------------------------------------------
    def add_items(self, ids: Sequence[str], fused: np.ndarray | torch.Tensor,
                  features: ItemFeatures | None = None) -> None:
        """Add (or replace) items online: new rows go straight into the index; replacing an
        existing id rebuilds the (flat) index. ``features`` keeps the per-modality rows too
        (zeros when omitted)."""
        fused = np.asarray(fused.detach() if isinstance(fused, torch.Tensor) else fused,
                           dtype=np.float32)
        if fused.ndim != 2 or fused.shape != (len(ids), self.fused.shape[1]):
            raise ValueError(f"add_items needs fused vectors [{len(ids)}, {self.fused.shape[1]}]"
                             f", got {fused.shape}")
        if len(set(ids)) != len(ids):
            raise ValueError("add_items ids must be unique")
        if features is not None and features.ids != list(ids):
            raise ValueError("features.ids must equal ids")
        visual = (features.visual.numpy() if features is not None
                  else np.zeros((len(ids), self.visual.shape[1]), np.float32))
        text = (features.text.numpy() if features is not None
                else np.zeros((len(ids), self.text.shape[1]), np.float32))
        present = (features.present.numpy() if features is not None
                   else np.zeros(len(ids), bool))
        replaced = False
        new_rows = []
        for k, item in enumerate(ids):
            row = self.rows.get(item)
            if row is None:
                new_rows.append(k)
                continue
            replaced = True
            self.fused[row], self.visual[row] = fused[k], visual[k]
            self.text[row], self.present[row] = text[k], present[k]
        if new_rows:
            start = len(self.ids)
            self.ids += [ids[k] for k in new_rows]
            self.rows.update({ids[k]: start + n for n, k in enumerate(new_rows)})
            self.fused = np.concatenate([self.fused, fused[new_rows]])
            self.visual = np.concatenate([self.visual, visual[new_rows]])
            self.text = np.concatenate([self.text, text[new_rows]])
            self.present = np.concatenate([self.present, present[new_rows]])
            if not replaced:
                self.index.add(_normalised(fused[new_rows]))
        if replaced:
            self._build_index()

    @torch.no_grad()
    def refuse(self, model: FusionRanker, fused_by: str) -> None:
        """Recompute the fused vectors with ``model`` (e.g. a trained checkpoint) and reindex."""
        f = self.features()
        self.fused = model.eval().fuse(f.visual, f.text, f.present).numpy().astype(np.float32)
        self.meta["fused_by"] = fused_by
        self._build_index()

    def save(self, path: str | Path | None = None) -> Path:
        """Write every file of the layout into ``path`` (default: where it was loaded from)."""
        import faiss

        path = Path(path) if path is not None else self.path
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / "visual.npy", self.visual)
        np.save(path / "text.npy", self.text)
        np.save(path / "present.npy", self.present)
        np.save(path / "items.npy", self.fused)
        (path / "ids.json").write_text(json.dumps(self.ids))
        self.meta.update(n_items=len(self.ids), missing_images=int((~self.present).sum()))
        (path / "meta.json").write_text(json.dumps(self.meta, indent=1))
        cpu_index = faiss.index_gpu_to_cpu(self.index) if self.on_gpu else self.index
        faiss.write_index(cpu_index, str(path / "index.faiss"))
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureStore:
        """Load ``features-<version>/`` or, given the parent folder, its newest version."""
        path = resolve_store(path)
        try:
            meta = json.loads((path / "meta.json").read_text())
            if meta.get("format") != STORE_FORMAT:
                raise ValueError(f"{path}/meta.json is not a {STORE_FORMAT} store")
            ids = json.loads((path / "ids.json").read_text())
            arrays = {name: np.load(path / f"{name}.npy")
                      for name in ("visual", "text", "present", "items")}
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"incomplete feature store {path}: {exc.filename} is "
                                    "missing; rebuild it with `stylestream features`") from exc
        return cls(path, meta, ids, arrays["visual"], arrays["text"], arrays["present"],
                   arrays["items"])


def resolve_store(path: str | Path) -> Path:
    """A store directory itself, or the newest ``features-*`` inside ``path``."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return path
    versions = sorted(p for p in path.glob(f"{PREFIX}*") if (p / "meta.json").is_file())
    if not versions:
        raise FileNotFoundError(f"no feature store in {path}: run `stylestream features` first")
    return versions[-1]


def new_version(out_dir: str | Path) -> tuple[str, Path]:
    """A fresh, sortable version name (UTC time) and its directory under ``out_dir``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    version, n = stamp, 0
    while (Path(out_dir) / f"{PREFIX}{version}").exists():
        n += 1
        version = f"{stamp}.{n}"
    return version, Path(out_dir) / f"{PREFIX}{version}"


def build_store(catalog_dir: str | Path, out_dir: str | Path,
                config: ExtractConfig | None = None, *, limit: int | None = None,
                progress: bool = True, encoders: Encoders | None = None) -> FeatureStore:
    """Encode a catalog directory and write a new store version under ``out_dir``.

    The fused vectors come from an untrained fusion network seeded with ``config.seed`` (item
    similarity then follows the frozen backbones through random projections, which preserve
    cosine structure); ``stylestream train`` writes a store re-fused with the trained network.
    """
    config = config or ExtractConfig()
    if limit is not None and limit < 1:
        raise ValueError("limit must be >= 1")
    items = []
    for item in iter_catalog(catalog_dir):
        items.append(item)
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise ValueError(f"catalog {catalog_dir} has no items")
    encoders = encoders or Encoders.load(config)
    features, stats = encode_items(items, catalog_dir, encoders, progress=progress)
    torch.manual_seed(config.seed)
    fusion = FusionRanker(FusionConfig(visual_in=features.visual.shape[1],
                                       text_in=features.text.shape[1])).eval()
    with torch.no_grad():
        fused = fusion.fuse(features.visual, features.text, features.present).numpy()
    version, path = new_version(out_dir)
    meta = {"format": STORE_FORMAT, "version": version, "catalog": str(catalog_dir),
            **asdict(config), "text_model": str(encoders.text.model_dir),
            "visual_dim": int(features.visual.shape[1]), "text_dim": int(features.text.shape[1]),
            "fused_dim": int(fused.shape[1]), "fused_by": f"untrained-seed-{config.seed}",
            "images_per_s": stats.images_per_s, "texts_per_s": stats.texts_per_s,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    store = FeatureStore(path, meta, features.ids, features.visual.numpy(),
                         features.text.numpy(), features.present.numpy(), fused)
    store.save(path)
    log.info("feature store %s: %d items, %d without image", path, len(items),
             stats.missing_images)
    return store
