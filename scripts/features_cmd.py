"""``stylestream features``: encode a catalog and write a versioned feature store + FAISS index.

    stylestream features --catalog DIR --out DIR [--backbone resnet50|densenet121|vgg16|
        efficientnet_lite0] [--weights NAME|PATH|none] [--text-model DIR] [--batch-size 16]
        [--limit N] [--image-size 224] [--variant paper|crop] [--fine-tune EPOCHS]

Writes ``<out>/features-<version>/`` (see ``models/feature_store.py``). ``--weights``: a
torchvision weights name, a local state-dict path, or ``none``; the default is ``imagenet`` for
``efficientnet_lite0`` (weights packaged offline) and ``none`` (untrained) for the others.
``--fine-tune N`` first trains the backbone for N epochs on the catalog's own categories
(``CatalogItem.category``), paper 000 §4.1.3's fine-tuning step on the data at hand.
"""

from __future__ import annotations

import argparse
import sys

BACKBONE_CHOICES = ("resnet50", "densenet121", "vgg16", "efficientnet_lite0")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "features", help="extract item features (image + text) and build the ANN index",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", required=True, help="catalog directory (catalog.jsonl)")
    parser.add_argument("--out", required=True, help="folder receiving features-<version>/")
    parser.add_argument("--backbone", choices=BACKBONE_CHOICES, default="resnet50")
    parser.add_argument("--weights", default=None,
                        help="torchvision weights name, state-dict path, or 'none'")
    parser.add_argument("--text-model", default=None,
                        help="local BERT directory (default: packaged all-MiniLM-L6-v2)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=None, help="encode the first N items only")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--variant", choices=("paper", "crop"), default="paper",
                        help="paper: resize 224x224 (paper 000); crop: resize 256 + crop 224")
    parser.add_argument("--fine-tune", type=int, default=0, metavar="EPOCHS",
                        help="fine-tune the backbone on catalog categories first")
    parser.add_argument("--fine-tune-limit", type=int, default=512,
                        help="images used for fine-tuning")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def resolve_weights(backbone: str, weights: str | None) -> str | None:
    """CLI weights value → ``build_backbone`` argument (``none`` → None; per-backbone default)."""
    if weights is None:
        return "imagenet" if backbone == "efficientnet_lite0" else None
    return None if weights.lower() == "none" else weights


def _fine_tune(encoders, catalog: str, args: argparse.Namespace) -> None:
    from pathlib import Path

    from models.catalog import iter_catalog
    from models.feature_store import item_image
    from models.visual import fine_tune

    images, labels = [], []
    for item in iter_catalog(catalog):
        image = item_image(item, Path(catalog))
        if image is not None:
            images.append(image)
            labels.append(item.category)
        if len(images) >= args.fine_tune_limit:
            break
    if len(set(labels)) < 2:
        raise ValueError("fine-tuning needs images of at least two categories")
    result = fine_tune(encoders.visual, images, labels, epochs=args.fine_tune,
                       batch_size=args.batch_size, image_size=args.image_size,
                       variant=args.variant, seed=args.seed)
    print(f"fine-tuned {args.backbone} on {len(images)} images, {len(result.classes)} "
          f"categories: loss {result.losses[0]:.3f} → {result.losses[-1]:.3f}, "
          f"train accuracy {result.accuracy:.2f}")


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1 or args.image_size < 32 or (args.limit is not None and args.limit < 1):
        print("stylestream features: --batch-size and --limit must be >= 1, --image-size >= 32",
              file=sys.stderr)
        return 2
    from pathlib import Path

    from models.catalog import CATALOG_FILE
    from models.feature_store import Encoders, ExtractConfig, build_store

    if not (Path(args.catalog) / CATALOG_FILE).is_file():
        print(f"stylestream features: no {CATALOG_FILE} in {args.catalog}: run "
              "`stylestream catalog` first", file=sys.stderr)
        return 2
    from models.visual import VisualModelError

    config = ExtractConfig(backbone=args.backbone,
                           weights=resolve_weights(args.backbone, args.weights),
                           text_model=args.text_model, image_size=args.image_size,
                           variant=args.variant, batch_size=args.batch_size, seed=args.seed)
    if config.weights is None:
        print(f"note: {args.backbone} runs untrained (no --weights); use --fine-tune N, a "
              "weights file, or --backbone efficientnet_lite0 for pretrained features",
              file=sys.stderr)
    try:
        encoders = Encoders.load(config)
        if args.fine_tune > 0:
            _fine_tune(encoders, args.catalog, args)
        store = build_store(args.catalog, args.out, config, limit=args.limit,
                            encoders=encoders)
    except (FileNotFoundError, ValueError, VisualModelError) as exc:
        print(f"stylestream features: {exc}", file=sys.stderr)
        return 2
    meta = store.meta
    print(f"feature store {store.version}: {meta['n_items']} items "
          f"({meta['missing_images']} without image), visual {meta['visual_dim']}-d, "
          f"text {meta['text_dim']}-d, {meta['images_per_s']:.1f} images/s, "
          f"{meta['texts_per_s']:.1f} texts/s → {store.path}")
    return 0
