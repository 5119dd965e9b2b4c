"""Fusion network (paper 000 Eq. 4, 13–20): shapes, masking, split MLP, checkpoints."""

from __future__ import annotations

import pytest
import torch

from models.fusion import (
    FusionConfig,
    FusionRanker,
    load_checkpoint,
    save_checkpoint,
    weighted_profile,
)

torch.set_num_threads(1)
CONFIG = FusionConfig(visual_in=40, text_in=24, n_users=5)


def _model(seed: int = 0) -> FusionRanker:
    torch.manual_seed(seed)
    return FusionRanker(CONFIG).eval()


def test_fused_vector_is_600d_and_modalities_interact() -> None:
    model = _model()
    visual, text = torch.randn(3, 40), torch.randn(3, 24)
    with torch.no_grad():
        fused = model.fuse(visual, text)
        other_text = text.clone()
        other_text[0] += 1.0
        changed = model.fuse(visual, other_text)
    assert fused.shape == (3, 600)
    # attention mixes modalities: a text change moves the attended *visual* half too
    assert not torch.allclose(fused[0, :300], changed[0, :300])
    assert torch.allclose(fused[1:], changed[1:])


def test_missing_image_is_masked_out() -> None:
    model = _model()
    text = torch.randn(2, 24)
    absent = torch.tensor([False, False])
    with torch.no_grad():
        a = model.fuse(torch.randn(2, 40), text, absent)
        b = model.fuse(torch.randn(2, 40) * 50, text, absent)
    assert torch.allclose(a, b)  # whatever the (garbage) visual vector, it never leaks in


@pytest.mark.parametrize("pair_rank", [64, 0])
def test_split_mlp_equals_naive_concatenation_and_forward(pair_rank: int) -> None:
    torch.manual_seed(0)
    model = FusionRanker(FusionConfig(visual_in=40, text_in=24, n_users=5,
                                      pair_rank=pair_rank)).eval()
    items = torch.randn(7, 40), torch.randn(7, 24)
    with torch.no_grad():
        fused = model.fuse(*items)
        weights = torch.rand(2, 7)
        profile = weighted_profile(fused, weights)
        user = model.user_repr(torch.tensor([1, 0]), profile)
        candidates = fused[torch.tensor([[0, 1, 2], [3, 4, 5]])]
        split = model.score_pairs(user, candidates)
        cached = model.score_pairs(user, None, model.item_cache(candidates))
        naive = model.naive_scores(user, candidates)
        single = model(torch.tensor([1, 0]), profile, candidates[:, 2])
    assert split.shape == (2, 3)
    assert torch.allclose(split, naive, atol=1e-5) and torch.allclose(split, cached, atol=1e-6)
    assert torch.allclose(single, split[:, 2], atol=1e-5)


def test_weighted_profile_is_score_weighted_mean() -> None:
    fused = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])
    weights = torch.tensor([[3.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    profile = weighted_profile(fused, weights)
    assert torch.allclose(profile, torch.tensor([[0.75, 0.25], [0.0, 0.0]]))


def test_seed_gives_identical_networks() -> None:
    visual, text = torch.randn(2, 40), torch.randn(2, 24)
    with torch.no_grad():
        assert torch.equal(_model(7).fuse(visual, text), _model(7).fuse(visual, text))
        assert not torch.equal(_model(7).fuse(visual, text), _model(8).fuse(visual, text))


def test_checkpoint_round_trip(tmp_path) -> None:
    model = _model(3)
    path = save_checkpoint(tmp_path / "m.pt", model, version="v-test", users=list("abcde"),
                           extra={"note": "x"})
    loaded = load_checkpoint(path)
    assert loaded.version == "v-test" and loaded.users == list("abcde")
    assert loaded.user_index()["a"] == 1 and loaded.extra == {"note": "x"}
    assert loaded.model.config == model.config
    visual, text = torch.randn(4, 40), torch.randn(4, 24)
    with torch.no_grad():
        assert torch.equal(loaded.model.fuse(visual, text), model.fuse(visual, text))


def test_bad_checkpoints_are_reported(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="stylestream train"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a readable"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a stylestream-fusion"):
        load_checkpoint(tmp_path / "other.pt")
