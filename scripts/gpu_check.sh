#!/usr/bin/env bash
# GPU check of the rerank path, for a machine with a CUDA device (about 3-5 minutes).
#
#   bash scripts/gpu_check.sh [OUT_DIR]        # PYTHON=... to pick the interpreter
#
# 1. the fused-kernel tests (CPU reference, padding, compile) and a CUDA correctness check of
#    the fused kernel (fp32 and bf16) against the eager naive path;
# 2. `stylestream bench rerank --device cuda` at 64 shoppers x 500 candidates: the fused path
#    (bf16 cache, torch.compile with CUDA graphs, pinned buffers) beside the eager naive path,
#    then fp32 without compile (what compile and bf16 each buy);
# 3. feature extraction images/s and texts/s on the GPU (needs the backbone weights cached).
# Targets (issue 12, H100/H200): >= 200M pairs/s and <= 5 ms per 64x500 batch (fused row),
# >= 8,000 images/s. Everything lands in OUT_DIR (default var/bench/gpu) as JSON and logs.
set -euo pipefail
PYTHON=${PYTHON:-python}
OUT=${1:-var/bench/gpu}
mkdir -p "$OUT"
export PYTHONPATH=${PYTHONPATH:-$PWD}
bench() { "$PYTHON" -m scripts.cli bench rerank --device cuda "$@"; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
                "available", torch.cuda.is_available(), "bf16", torch.cuda.is_available()
                and torch.cuda.is_bf16_supported())'
} 2>&1 | tee "$OUT/device.txt"
if ! "$PYTHON" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "gpu_check: torch sees no CUDA device; run this on a machine with a GPU" >&2
    exit 2
fi

"$PYTHON" -m pytest -q tests/test_fused_rerank.py 2>&1 | tee "$OUT/tests.log"

"$PYTHON" - <<'EOF' 2>&1 | tee "$OUT/cuda_equivalence.log"
"""The fused kernel on CUDA (fp32 eager, bf16 compiled) against the eager naive path."""
import torch
from models.fusion import FusionConfig, FusionRanker
from serving.fused_rerank import FusedRerank, Shape

torch.manual_seed(0)
model = FusionRanker(FusionConfig(visual_in=1280, text_in=384, n_users=1000)).eval().cuda()
with torch.no_grad():
    fused = model.fuse(torch.randn(5000, 1280, device="cuda").abs(),
                       torch.randn(5000, 384, device="cuda"))
    fused = torch.cat([fused, torch.zeros(1, 600, device="cuda")])
    cache = model.item_cache(fused)
    cache[-1] = 0
    users, hist = torch.randint(1001, (64,)), torch.randint(5000, (64, 20))
    weights, cands = torch.rand(64, 20) * 10, torch.randint(5000, (64, 500))
    profile = torch.einsum("bl,bld->bd", weights.cuda(), fused[hist.cuda()])
    profile = profile / weights.cuda().sum(1, keepdim=True)
    naive = model.naive_scores(model.user_repr(users.cuda(), profile), fused[cands.cuda()]).cpu()
for dtype, compile_, limit in (("fp32", False, 1e-3), ("bf16", True, 3e-2)):
    fast = FusedRerank(model, fused, cache, "cuda", dtype=dtype, compile=compile_,
                       shape=Shape(64, 500, 20))
    got = fast.scores(users, hist, weights, cands)
    err = float((got - naive).abs().max())
    allowed = limit * (1 + float(naive.abs().max()))
    print(f"{dtype} compiled={fast.compiled}: max |fused - naive| {err:.3g} (allowed "
          f"{allowed:.3g})")
    assert err <= allowed and fast.compiled == compile_, "fused kernel disagrees on CUDA"
EOF

bench --images 0 --texts 0 --seconds 5 --out "$OUT/rerank_bf16_compiled.json" \
    2>&1 | tee "$OUT/rerank_bf16_compiled.md"
bench --images 0 --texts 0 --seconds 3 --dtype fp32 --no-compile \
    --out "$OUT/rerank_fp32_eager.json" 2>&1 | tee "$OUT/rerank_fp32_eager.md"
bench --images 512 --texts 512 --seconds 1 --out "$OUT/rerank_extraction.json" \
    2>&1 | tee "$OUT/rerank_extraction.md" || echo "extraction step failed (weights cached?)"
