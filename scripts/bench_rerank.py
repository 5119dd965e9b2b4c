"""``stylestream bench rerank``: reranking throughput of the fusion network, and feature
extraction throughput.

    stylestream bench rerank [--shoppers 64] [--candidates 500] [--items 5000] [--history 20]
        [--seconds 3] [--backbone efficientnet_lite0] [--images 16] [--texts 64]
        [--device cpu|cuda] [--dtype auto|fp32|bf16] [--compile|--no-compile] [--path-shoppers 256]
        [--out var/bench/rerank.json]

Rerank rows (same model, same batch: shoppers × candidates pairs per call):

- ``fused``: the accelerated path (:mod:`serving.fused_rerank`): item cache in bf16 where the
  device supports it (fp32 on CPU), one fused kernel per micro-batch at a fixed padded shape
  (``torch.compile``, CUDA graphs on CUDA), inputs through pinned host buffers and the scores
  back to the host — timed from host index tensors to host scores;
- ``split-cached``: the served path: item side (fused vectors and the item part of the first
  MLP layer) cached, per call only the shopper terms and one batched matmul (Eq. 19–20 split);
- ``naive-concat``: eager reference: concatenate ``[user ; item ; pair]`` per pair and run the
  full MLP (fused vectors still precomputed);
- ``naive-fuse``: as naive-concat, and the candidates' fusion (Eq. 9, 12–18) recomputed per call;
- ``scorer-e2e``: :class:`serving.fusion_scorer.FusionScorer.score` on Python records,
  reasons included (what the rerank worker pays).

Served-path rows (``--path-shoppers``, 0 skips them): the rerank path as a worker runs it between
its Redis reads and its publishing — recall (history, co-visitation, content, trending), the
decayed-score chain, the calibrated final ranker, the diversity/explore final list — CPU µs per
list on a generated micro-batch, with same-run baselines (:mod:`scripts.bench_rerank_path`).

Extraction rows: images/s (decode + preprocess + backbone) and texts/s (clean + tokenize + BERT)
of :func:`models.feature_store.encode_items` on generated images and titles.
Prints markdown tables (with ratios) and writes the numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

from scripts.bench_args import json_out


def register(bench_subparsers: argparse._SubParsersAction) -> None:
    parser = bench_subparsers.add_parser(
        "rerank", help="fusion reranking pairs/s (split+cached vs naive) and extraction rates",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shoppers", type=int, default=64)
    parser.add_argument("--candidates", type=int, default=500)
    parser.add_argument("--items", type=int, default=5000, help="catalog size")
    parser.add_argument("--history", type=int, default=20, help="items per shopper history")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per row")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--images", type=int, default=16, help="images to encode (0: skip)")
    parser.add_argument("--texts", type=int, default=64, help="texts to encode (0: skip)")
    parser.add_argument("--device", default=None, choices=("cpu", "cuda"),
                        help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "fp32", "bf16"),
                        help="item cache/kernel dtype of the fused row (auto: bf16 on CUDA)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="torch.compile the fused kernel (default: only on CUDA)")
    parser.add_argument("--path-shoppers", type=int, default=256,
                        help="shoppers per micro-batch of the served-path rows (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="var/bench/rerank.json", type=json_out)
    parser.set_defaults(func=run)


def _timed(fn, seconds: float, sync) -> tuple[float, int]:
    """Mean seconds per call over at least 2 calls and ``seconds`` of wall time."""
    fn()
    sync()  # warm-up
    calls, began = 0, time.perf_counter()
    while calls < 2 or time.perf_counter() - began < seconds:
        fn()
        calls += 1
    sync()
    return (time.perf_counter() - began) / calls, calls


def bench_rerank(args: argparse.Namespace, device) -> list[dict]:
    import torch

    from models.feature_store import FeatureStore
    from models.fusion import FusionConfig, FusionRanker, save_checkpoint
    from serving.fused_rerank import FusedRerank, Shape
    from serving.fusion_scorer import FusionScorer
    from serving.scorer import Candidate, RerankRequest, ShopperContext

    g = torch.Generator().manual_seed(args.seed)
    n, b, c = args.items, args.shoppers, args.candidates
    torch.manual_seed(args.seed)
    config = FusionConfig(visual_in=1280, text_in=384, n_users=1000)
    model = FusionRanker(config).eval()
    visual = torch.randn(n, config.visual_in, generator=g).abs()
    text = torch.randn(n, config.text_in, generator=g)
    present = torch.ones(n, dtype=torch.bool)
    ids = [f"item{k}" for k in range(n)]
    cand_rows = torch.randint(n, (b, c), generator=g)
    hist_rows = torch.randint(n, (b, args.history), generator=g)
    hist_weights = torch.rand(b, args.history, generator=g) * 10
    users = torch.randint(config.n_users + 1, (b,), generator=g)

    with tempfile.TemporaryDirectory() as tmp:
        meta = {"format": "stylestream-features/1", "version": "bench"}
        FeatureStore(Path(tmp) / "features-bench", meta, ids, visual.numpy(), text.numpy(),
                     present.numpy(), torch.zeros(n, config.fused_dim).numpy()).save()
        save_checkpoint(Path(tmp) / "model.pt", model, version="bench",
                        users=[f"user{k}" for k in range(config.n_users)])
        scorer = FusionScorer(Path(tmp) / "model.pt", tmp, device=device)
    state = scorer.state  # the scorer's cached item side
    model = state.model
    dev = torch.device(device)
    cand_d, hist_d, weights_d, users_d = (t.to(dev) for t in (cand_rows, hist_rows,
                                                             hist_weights, users))
    visual_d, text_d, present_d = visual.to(dev), text.to(dev), present.to(dev)

    def user_repr():
        profile = torch.einsum("bl,bld->bd", weights_d, state.fused[hist_d])
        profile = profile / weights_d.sum(1, keepdim=True)
        return model.user_repr(users_d, profile)

    fast = FusedRerank(model, state.fused, state.cache, dev, dtype=args.dtype,
                       compile=args.compile, shape=Shape(b, c, args.history))

    def fused():
        return fast.scores(users, hist_rows, hist_weights, cand_rows)

    def split_cached():
        return scorer.score_rows(state, users_d, hist_d, weights_d, cand_d)

    def naive_concat():
        return model.naive_scores(user_repr(), state.fused[cand_d])

    def naive_fuse():
        flat = cand_d.reshape(-1)
        fused = model.fuse(visual_d[flat], text_d[flat], present_d[flat]).view(b, c, -1)
        return model.naive_scores(user_repr(), fused)

    shoppers = [ShopperContext(f"user{int(u)}", 0.0,
                               {ids[int(r)]: float(w) for r, w in zip(hr, hw, strict=True)},
                               {ids[int(r)]: "cart" for r in hr})
                for u, hr, hw in zip(users, hist_rows, hist_weights, strict=True)]
    candidates = [[Candidate(ids[int(r)]) for r in row] for row in cand_rows]

    request = RerankRequest(shoppers, candidates, 0.0)

    def e2e():
        return scorer.score(request)

    with torch.no_grad():
        reference = naive_concat()
        if not torch.allclose(split_cached(), reference, atol=1e-3, rtol=1e-3):
            raise RuntimeError("split-cached scores differ from the naive reference")
        fused_error = float((fused() - reference.cpu()).abs().max())
        scale = float(reference.abs().max()) + 1.0
        # fp32: rounding only; bf16 (8 mantissa bits): ~1e-2 relative to the score scale
        allowed = (3e-2 if fast.dtype == torch.bfloat16 else 1e-4) * scale
        if fused_error > allowed:
            raise RuntimeError(f"fused scores differ from the naive reference by {fused_error:.3g}"
                               f" (allowed {allowed:.3g} in {fast.dtype})")

        def sync():
            if dev.type == "cuda":
                torch.cuda.synchronize()

        rows = []
        for name, fn in (("fused", fused), ("split-cached", split_cached),
                         ("naive-concat", naive_concat),
                         ("naive-fuse", naive_fuse), ("scorer-e2e", e2e)):
            seconds, calls = _timed(fn, args.seconds, sync)
            rows.append({"path": name, "ms_per_batch": seconds * 1e3,
                         "pairs_per_s": b * c / seconds, "calls": calls})
    naive = next(r for r in rows if r["path"] == "naive-concat")["pairs_per_s"]
    for row in rows:
        row["vs_naive_concat"] = row["pairs_per_s"] / naive
    rows[0].update(dtype=str(fast.dtype).removeprefix("torch."), compiled=fast.compiled,
                   max_abs_diff_vs_naive=fused_error)
    return rows


def bench_extraction(args: argparse.Namespace) -> dict:
    from PIL import Image, ImageDraw

    from models.catalog import CatalogItem
    from models.feature_store import Encoders, ExtractConfig, encode_items

    weights = "imagenet" if args.backbone == "efficientnet_lite0" else None
    encoders = Encoders.load(ExtractConfig(backbone=args.backbone, weights=weights,
                                           batch_size=16))
    result: dict = {"backbone": args.backbone, "weights": weights}
    with tempfile.TemporaryDirectory() as tmp:
        items = []
        for k in range(max(args.images, args.texts)):
            image = None
            if k < args.images:
                picture = Image.new("RGB", (360, 540), (240, 240, 240))
                ImageDraw.Draw(picture).rectangle((60 + k % 40, 80, 300, 460),
                                                  fill=(30 * k % 255, 90, 160))
                picture.save(Path(tmp) / f"{k}.jpg")
                image = f"{k}.jpg"
            items.append(CatalogItem(str(k), f"Slim fit cotton shirt no. {k} - FREE shipping",
                                     "Shirts", "Topwear", description="Long sleeves, "
                                     "button-down collar and a chest pocket.", image=image))
        if args.images:
            encode_items(items[:1], tmp, encoders)  # warm-up (first-call allocations)
            _, stats = encode_items(items[:args.images], tmp, encoders)
            result["images_per_s"] = stats.images_per_s
        if args.texts:
            encoders.text.encode_texts([items[0].text()])  # warm-up
            began = time.perf_counter()
            encoders.text.encode_texts([i.text() for i in items[:args.texts]], batch_size=16)
            result["texts_per_s"] = args.texts / (time.perf_counter() - began)
    return result


def _markdown(rows: list[dict], extraction: dict, device: str, args) -> str:
    lines = [f"Fusion rerank, {args.shoppers} shoppers x {args.candidates} candidates per batch, "
             f"{args.items} items, device {device}", "",
             "| path | ms / batch | pairs / s | x naive-concat |", "|---|---:|---:|---:|"]
    lines += [f"| {r['path']} | {r['ms_per_batch']:.2f} | {r['pairs_per_s']:,.0f} | "
              f"{r['vs_naive_concat']:.2f} |" for r in rows]
    fast = rows[0]
    lines += ["", f"fused: {fast['dtype']}, compiled {fast['compiled']}, max |fused - naive| "
              f"{fast['max_abs_diff_vs_naive']:.2e}"]
    if extraction:
        lines += ["", f"Feature extraction ({extraction['backbone']}, CPU threads as set)", "",
                  "| stage | items / s |", "|---|---:|"]
        if "images_per_s" in extraction:
            lines.append(f"| images (224x224) | {extraction['images_per_s']:.1f} |")
        if "texts_per_s" in extraction:
            lines.append(f"| texts (MiniLM) | {extraction['texts_per_s']:.1f} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if min(args.shoppers, args.candidates, args.items, args.history) < 1 or args.seconds <= 0 \
            or args.path_shoppers < 0:
        print("stylestream bench rerank: sizes must be >= 1 (--path-shoppers >= 0) and "
              "--seconds > 0", file=sys.stderr)
        return 2
    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print(f"stylestream bench rerank: --device cuda but torch {torch.__version__} sees no "
              "CUDA device (torch.cuda.is_available() is False); use --device cpu",
              file=sys.stderr)
        return 2
    rows = bench_rerank(args, device)
    served: dict = {}
    if args.path_shoppers > 0:
        from scripts.bench_rerank_path import PathSizes, markdown, time_path

        served = time_path(PathSizes(shoppers=args.path_shoppers, seed=args.seed), args.seconds)
        served.pop("lists")
    extraction = bench_extraction(args) if args.images or args.texts else {}
    print(_markdown(rows, extraction, device, args))
    if served:
        print("\n" + markdown(served))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "rerank", "device": device, "torch_threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "shoppers": args.shoppers, "candidates": args.candidates, "items": args.items,
        "history": args.history, "compile": args.compile, "dtype": args.dtype,
        "rerank": rows, "served_path": served, "extraction": extraction}, indent=1))
    print(f"\n→ {out}")
    return 0
