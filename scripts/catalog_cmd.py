"""``stylestream catalog``: generate the demo catalog or import a public one.

    stylestream catalog --out DIR --demo [--items N --stores K --seed S]
    stylestream catalog --out DIR --import fashion_products|hm [--data DIR --limit N --with-images]

``--data`` defaults to ``STYLESTREAM_DATA``. Imported items reference their images by absolute
path inside the data directory; nothing is copied.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "catalog", help="generate the demo catalog, or import one (Fashion Product Images / H&M)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="catalog directory to write")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--demo", action="store_true",
                      help="draw a synthetic catalog (the default when --import is not given)")
    mode.add_argument("--import", dest="source", choices=("fashion_products", "hm"),
                      help="import a public catalog from the data directory")
    parser.add_argument("--items", type=int, default=300, help="demo: number of items")
    parser.add_argument("--stores", type=int, default=5, help="demo: number of stores")
    parser.add_argument("--seed", type=int, default=0, help="demo: random seed")
    parser.add_argument("--data", default=None,
                        help="import: data directory (default: $STYLESTREAM_DATA)")
    parser.add_argument("--limit", type=int, default=None, help="import: keep at most N items")
    parser.add_argument("--with-images", action="store_true",
                        help="import: keep only items that have an image")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from models.catalog import save_catalog

    if args.source is None:
        from models.demo_catalog import generate_demo_catalog

        if args.items < 1 or args.stores < 1:
            print("stylestream catalog: --items and --stores must be >= 1", file=sys.stderr)
            return 2
        items = generate_demo_catalog(args.out, n_items=args.items, n_stores=args.stores,
                                      seed=args.seed)
        print(f"demo catalog: {len(items)} items in {args.stores} stores → {args.out}")
        return 0

    from models.catalog_import import CatalogImportError, import_catalog
    from models.datasets import DatasetError, data_dir

    try:
        report = import_catalog(args.source, data_dir(args.data), limit=args.limit,
                                with_images=args.with_images)
    except (CatalogImportError, DatasetError) as exc:
        print(f"stylestream catalog: {exc}", file=sys.stderr)
        return 2
    if not report.items:
        print(f"stylestream catalog: no items imported from {args.source} "
              f"({report.skipped} rows skipped)", file=sys.stderr)
        return 1
    path = save_catalog(args.out, report.items)
    print(f"{args.source}: {len(report.items)} items ({report.skipped} bad rows skipped, "
          f"{report.without_image} rows without image) → {path}")
    return 0
