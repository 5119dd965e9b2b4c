"""FusionScorer: the Scorer protocol over a checkpoint + feature store, reasons, hot reload."""

from __future__ import annotations

import os
import time

import pytest
import torch

from models.fusion import FusionConfig, FusionRanker, ItemFeatures, save_checkpoint
from serving.fusion_scorer import FusionScorer
from serving.scorer import Candidate, RerankRequest, Scorer, ShopperContext

torch.set_num_threads(1)


def _shopper(user: str, history: dict[str, float], behaviors=None) -> ShopperContext:
    return ShopperContext(user_id=user, now=time.time(), scores=history,
                          behaviors=behaviors or {})


def _request(shoppers: list[ShopperContext], candidates: list[list[Candidate]]) -> RerankRequest:
    return RerankRequest(shoppers, candidates, time.time())


def test_matches_the_network_and_implements_the_protocol(trained) -> None:
    checkpoint, store, result, features = trained
    scorer = FusionScorer(checkpoint, store.parent, device="cpu")
    assert isinstance(scorer, Scorer) and scorer.version == "toy-1@toy"
    history = {"i0": 2.0, "i2": 1.0}
    out = scorer.score(_request([_shopper("u0", history), _shopper("stranger", {})],
                                [[Candidate("i4"), Candidate("i5")], [Candidate("i6")]]))
    assert [len(x) for x in out] == [2, 1] and out[0][1].item_id == "i5"
    model = result.model.eval()
    with torch.no_grad():
        fused = model.fuse(features.visual, features.text, features.present)
        profile = (2 * fused[0] + fused[2]) / 3
        expected = model(torch.tensor([result.users.index("u0") + 1, 0]),
                         torch.stack([profile, torch.zeros_like(profile)]), fused[[4, 6]])
    assert out[0][0].score == pytest.approx(float(expected[0]), abs=1e-4)
    assert out[1][0].score == pytest.approx(float(expected[1]), abs=1e-4)  # unknown user: row 0
    with pytest.raises(ValueError, match="candidate lists"):
        scorer.score(_request([_shopper("u0", {})], []))


def test_prefers_what_the_network_learned_and_explains_it(trained) -> None:
    checkpoint, store, _, _ = trained
    scorer = FusionScorer(checkpoint, store, device="cpu")
    # a new shopper who carted two even-style items: even candidates should win
    shopper = _shopper("newcomer", {"i0": 5.0, "i2": 5.0}, {"i0": "cart", "i2": "view"})
    cands = [Candidate(f"i{k}") for k in (11, 13, 14, 16)]
    scored = {s.item_id: s for s in scorer.score(_request([shopper], [cands]))[0]}
    assert min(scored["i14"].score, scored["i16"].score) > \
        max(scored["i11"].score, scored["i13"].score)
    reason = scored["i14"].reasons[0]
    assert reason.split()[-3] in {"i0", "i2"} and reason.startswith(("looks like",
                                                                     "described like"))
    assert reason.endswith("you carted") == (reason.split()[-3] == "i0")
    cold = scorer.score(_request([_shopper("x", {})], [[Candidate("unknown-item")]]))[0][0]
    assert cold.reasons == ["no item features yet"]


def test_hot_reload_keeps_serving_through_a_broken_file(trained, tmp_path) -> None:
    checkpoint, store, result, _ = trained
    local = tmp_path / "model.pt"
    local.write_bytes(checkpoint.read_bytes())
    scorer = FusionScorer(local, store, device="cpu")
    request = _request([_shopper("u1", {"i1": 1.0})], [[Candidate("i3")]])
    before = scorer.score(request)[0][0].score
    assert scorer.maybe_reload() is False
    torch.manual_seed(99)
    other = FusionRanker(FusionConfig(**{**result.model.config.__dict__}))
    save_checkpoint(local, other, version="toy-2", users=result.users)
    os.utime(local, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert scorer.maybe_reload() is True and scorer.version.startswith("toy-2")
    assert scorer.score(request)[0][0].score != pytest.approx(before)
    local.write_bytes(b"half a file")  # a broken upload keeps the old model serving
    assert scorer.maybe_reload() is False and scorer.version.startswith("toy-2")


def test_cold_start_items_are_scored_from_their_own_features(trained) -> None:
    """Items added while serving are scored at once, from the features they were added with.

    Catches: added items left unknown ("no item features yet"), added items all landing on one
    row (e.g. the "no features" row or the first added row), or rows misaligned with ids."""
    checkpoint, store, _, features = trained
    scorer = FusionScorer(checkpoint, store, device="cpu")
    odd, even = features.ids.index("i7"), features.ids.index("i8")
    scorer.add_items(ItemFeatures(["new-odd", "new-even"], features.visual[[odd, even]],
                                  features.text[[odd, even]], features.present[[odd, even]]))
    shopper = _shopper("u1", {"i1": 1.0, "i3": 1.0}, {"i1": "favorite", "i3": "favorite"})
    names = ("new-odd", "i7", "new-even", "i8")
    scored = {s.item_id: s
              for s in scorer.score(_request([shopper], [[Candidate(n) for n in names]]))[0]}
    assert scored["new-odd"].score == pytest.approx(scored["i7"].score, abs=1e-5)
    assert scored["new-even"].score == pytest.approx(scored["i8"].score, abs=1e-5)
    assert abs(scored["new-odd"].score - scored["new-even"].score) > 1e-3
    assert scored["new-odd"].reasons[0].endswith("you saved")


def test_fused_path_serves_the_same_scores_and_follows_reloads(trained, tmp_path) -> None:
    """Catches the fused kernel path of the scorer (on by default on CUDA, forced on here on
    CPU) disagreeing with the eager path, or scoring with a stale item cache after a hot reload
    or a cold-start item."""
    checkpoint, store, result, features = trained
    local = tmp_path / "model.pt"
    local.write_bytes(checkpoint.read_bytes())
    eager = FusionScorer(local, store, device="cpu")
    fast = FusionScorer(local, store, device="cpu", fused=True)
    assert eager.fused is False and fast.fused is True
    shoppers = [_shopper("u0", {"i0": 2.0, "i2": 1.0}), _shopper("stranger", {})]
    cands = [[Candidate("i4"), Candidate("nope"), Candidate("i5")], [Candidate("i6")]]

    def same() -> None:
        request = _request(shoppers, cands)
        for a, b in zip(eager.score(request), fast.score(request), strict=True):
            assert [x.item_id for x in a] == [y.item_id for y in b]
            assert [x.reasons for x in a] == [y.reasons for y in b]
            assert [x.score for x in a] == pytest.approx([y.score for y in b], abs=1e-5)

    same()
    kernel = fast.fast_path(fast.state)
    torch.manual_seed(7)
    other = FusionRanker(FusionConfig(**{**result.model.config.__dict__}))
    save_checkpoint(local, other, version="toy-3", users=result.users)
    os.utime(local, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    assert eager.maybe_reload() and fast.maybe_reload()
    same()
    twin = features.ids.index("i7")
    for scorer in (eager, fast):
        scorer.add_items(ItemFeatures(["nope"], features.visual[[twin]], features.text[[twin]],
                                      features.present[[twin]]))
    same()
    assert fast.fast_path(fast.state) is kernel  # reload and new item refilled it in place


def test_bench_rerank_runs_small_and_checks_split_against_naive(tmp_path, capsys) -> None:
    import json

    from tests.fusion_toy import TINY_BENCH, run_bench_rerank

    out = tmp_path / "rerank.json"
    assert run_bench_rerank(*TINY_BENCH, "--items", "60", "--candidates", "7", "--images", "2",
                            "--texts", "3", "--out", str(out)) == 0
    report = json.loads(out.read_text())
    paths = {row["path"]: row for row in report["rerank"]}
    assert set(paths) == {"fused", "split-cached", "naive-concat", "naive-fuse", "scorer-e2e"}
    assert all(row["pairs_per_s"] > 0 for row in report["rerank"])
    assert report["extraction"]["images_per_s"] > 0 and report["extraction"]["texts_per_s"] > 0
    assert "| split-cached |" in capsys.readouterr().out
