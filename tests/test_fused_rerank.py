"""The fused fixed-shape rerank kernel (serving.fused_rerank) against the naive reference.

Tolerances: fp32 on CPU differs from the eager naive concatenation by float rounding only, so
scores must agree within 1e-5 absolute; the bf16 item cache keeps 8 mantissa bits, so bf16
scores must agree within 3e-2 × (1 + max |score|).
"""

from __future__ import annotations

import json

import pytest
import torch

from models.fusion import FusionConfig, FusionRanker
from serving.fused_rerank import FusedRerank, Shape, pick_dtype
from tests.fusion_toy import TINY_BENCH, run_bench_rerank

torch.set_num_threads(1)
N_ITEMS = 30


def _setup(pair_rank: int = 64, seed: int = 0):
    torch.manual_seed(seed)
    model = FusionRanker(FusionConfig(visual_in=40, text_in=24, n_users=5,
                                      pair_rank=pair_rank)).eval()
    with torch.no_grad():
        fused = model.fuse(torch.randn(N_ITEMS, 40), torch.randn(N_ITEMS, 24))
        fused = torch.cat([fused, torch.zeros(1, fused.shape[1])])      # row N: no features
        cache = model.item_cache(fused)
        cache[-1] = 0.0
    return model, fused, cache


def _batch(b: int = 3, c: int = 7, length: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    users = torch.randint(6, (b,), generator=g)
    users[0] = 0                                               # the unknown user
    hist_rows = torch.randint(N_ITEMS, (b, length), generator=g)
    hist_weights = torch.rand(b, length, generator=g) * 5
    hist_weights[-1] = 0.0                                     # a shopper without history
    cand_rows = torch.randint(N_ITEMS, (b, c), generator=g)
    cand_rows[0, -1] = N_ITEMS                                 # a candidate without features
    return users, hist_rows, hist_weights, cand_rows


def _naive(model, fused, users, hist_rows, hist_weights, cand_rows) -> torch.Tensor:
    with torch.no_grad():
        total = hist_weights.sum(1, keepdim=True).clamp_min(1e-12)
        profile = torch.einsum("bl,bld->bd", hist_weights, fused[hist_rows]) / total
        return model.naive_scores(model.user_repr(users, profile), fused[cand_rows])


@pytest.mark.parametrize("pair_rank", [64, 0])
def test_fused_fp32_equals_the_naive_reference(pair_rank: int) -> None:
    """Catches any algebra slip in the fused kernel (profile normalisation, user term, pair term,
    bias, the zero "no features" row) and the default dtype on CPU not being fp32."""
    model, fused, cache = _setup(pair_rank)
    fast = FusedRerank(model, fused, cache, "cpu", shape=Shape(4, 8, 8))
    assert fast.dtype == torch.float32 and fast.compiled is False
    batch = _batch()
    got = fast.scores(*batch)
    want = _naive(model, fused, *batch)
    assert got.shape == (3, 7) and got.dtype == torch.float32
    assert torch.allclose(got, want, atol=1e-5, rtol=0)


def test_fixed_shape_padding_gives_the_unpadded_scores() -> None:
    """Catches padding leaking into real scores: padded history must weigh nothing, padded
    candidates/shoppers must be cut away, and inputs larger than the fixed shape must round up
    to a multiple of it instead of failing or truncating; reused buffers must be re-padded."""
    model, fused, cache = _setup()
    batch = _batch(b=5, c=11, length=6)
    exact = FusedRerank(model, fused, cache, "cpu", shape=Shape(5, 11, 6)).scores(*batch)
    padded = FusedRerank(model, fused, cache, "cpu", shape=Shape(64, 500, 32))
    assert torch.allclose(padded.scores(*batch), exact, atol=1e-6, rtol=0)
    small = FusedRerank(model, fused, cache, "cpu", shape=Shape(2, 4, 4))
    assert torch.allclose(small.scores(*batch), exact, atol=1e-6, rtol=0)
    assert Shape(2, 4, 4).fit(5, 11, 6) in small._buffers      # rounded up to (6, 12, 8)
    assert Shape(2, 4, 4).fit(5, 11, 6) == Shape(6, 12, 8)
    # a smaller batch through the same (dirty) buffers: leftovers of the big one must not count
    little = tuple(t[:2, :3] if t.dim() == 2 else t[:2] for t in batch)
    assert torch.allclose(padded.scores(*little), _naive(model, fused, *little), atol=1e-5,
                          rtol=0)
    with pytest.raises(ValueError, match="shapes disagree"):
        padded.scores(batch[0][:2], *batch[1:])


def test_bf16_cache_stays_close_and_auto_picks_fp32_on_cpu() -> None:
    """Catches a bf16 path that drifts beyond bf16 rounding, and 'auto' choosing bf16 on CPU."""
    assert pick_dtype(torch.device("cpu")) == torch.float32
    with pytest.raises(ValueError, match="dtype"):
        pick_dtype(torch.device("cpu"), "fp16")
    model, fused, cache = _setup()
    fast = FusedRerank(model, fused, cache, "cpu", dtype="bf16", shape=Shape(4, 8, 8))
    assert fast.kernel.cache.dtype == torch.bfloat16
    batch = _batch()
    want = _naive(model, fused, *batch)
    got = fast.scores(*batch)
    assert got.dtype == torch.float32
    assert float((got - want).abs().max()) <= 3e-2 * (1 + float(want.abs().max()))


def test_compiled_kernel_equals_eager() -> None:
    """Catches graph breaks or shape guards in the kernel under torch.compile (fullgraph, fixed
    shapes) — the path CUDA runs — by compiling it on CPU (~20 s) and comparing to eager, and
    a compiled kernel that keeps stale weights after an in-place refresh."""
    model, fused, cache = _setup()
    fast = FusedRerank(model, fused, cache, "cpu", compile=True, shape=Shape(4, 8, 8))
    batch = _batch()
    got = fast.scores(*batch)
    assert fast.compiled is True                      # no silent fallback to eager
    assert torch.allclose(got, _naive(model, fused, *batch), atol=1e-5, rtol=0)
    assert torch.allclose(fast.scores(*batch), got)   # the second call replays the same graph
    other, other_fused, other_cache = _setup(seed=5)  # a hot reload: buffers refilled in place
    assert fast.refresh(other, other_fused, other_cache) and fast.compiled is True
    assert torch.allclose(fast.scores(*batch), _naive(other, other_fused, *batch), atol=1e-5,
                          rtol=0)                     # the compiled kernel sees the new weights


def test_refresh_serves_a_new_model_in_place_or_refuses() -> None:
    """Catches a hot reload that keeps scoring with the old weights or old items, one that
    moves the kernel's buffers (which would invalidate a compiled kernel's CUDA graphs), and a
    refresh that accepts tables of another size instead of asking for a rebuild."""
    model, fused, cache = _setup(seed=0)
    fast = FusedRerank(model, fused, cache, "cpu", shape=Shape(4, 8, 8))
    batch = _batch()
    before = fast.scores(*batch)
    address = fast.kernel.cache.data_ptr()
    other, other_fused, other_cache = _setup(seed=5)
    grown = torch.cat([other_fused[:-1], other_fused[:2], other_fused[-1:]])  # 2 more items
    grown_cache = torch.cat([other_cache[:-1], other_cache[:2], other_cache[-1:]])
    assert fast.refresh(other, grown, grown_cache) is True
    assert fast.kernel.cache.data_ptr() == address and fast.blank == N_ITEMS + 2
    users, hist_rows, hist_weights, cand_rows = batch
    cand_rows = cand_rows.clone()
    cand_rows[1, 0] = N_ITEMS + 1                              # one of the new items
    after = fast.scores(users, hist_rows, hist_weights, cand_rows)
    want = _naive(other, grown, users, hist_rows, hist_weights, cand_rows)
    assert torch.allclose(after, want, atol=1e-5, rtol=0)
    assert not torch.allclose(after[0], before[0], atol=1e-3)
    smaller, small_fused, small_cache = _setup(pair_rank=0)
    assert fast.refresh(smaller, small_fused, small_cache) is False
    assert torch.allclose(fast.scores(users, hist_rows, hist_weights, cand_rows), after)


def test_bench_cuda_without_a_gpu_is_one_clear_line(monkeypatch, capsys, tmp_path) -> None:
    """Catches `bench rerank --device cuda` crashing with a traceback where no CUDA device is
    visible (the availability check is forced off so this holds on GPU machines too)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run_bench_rerank("--device", "cuda", "--out", str(tmp_path / "x.json")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--device cuda" in err and "use --device cpu" in err
    assert not (tmp_path / "x.json").exists()


def test_bench_reports_fused_beside_naive(tmp_path, capsys) -> None:
    """Catches the bench losing the fused row, its ratio to the eager naive path, or its
    correctness check at a tiny size (no extraction)."""
    out = tmp_path / "rerank.json"
    assert run_bench_rerank(*TINY_BENCH, "--items", "40", "--candidates", "9", "--images", "0",
                            "--texts", "0", "--out", str(out)) == 0
    rows = {row["path"]: row for row in json.loads(out.read_text())["rerank"]}
    fast = rows["fused"]
    assert fast["dtype"] == "float32" and fast["compiled"] is False
    assert fast["max_abs_diff_vs_naive"] < 1e-4 and fast["pairs_per_s"] > 0
    assert fast["vs_naive_concat"] == pytest.approx(
        fast["pairs_per_s"] / rows["naive-concat"]["pairs_per_s"])
    assert "| fused |" in capsys.readouterr().out
