"""Training (paper 000 Eq. 21, §4.1.3): learns a toy preference, early-stops, saves artefacts."""

from __future__ import annotations

import json

import pytest
import torch

from models.fusion import FusionConfig, ItemFeatures, load_checkpoint
from models.training import TrainConfig, Trainer, save_result, train

torch.set_num_threads(1)
SMALL = FusionConfig(token_dim=32, visual_hidden=32, heads=4, head_dim=8, user_dim=8, hidden=32)


def _toy(n_items: int = 40, n_users: int = 24, seed: int = 0):
    """Two styles of items (visual direction ±); each user scores every item of one style,
    2 when the item's second visual feature is positive, else 1: learnable from features."""
    g = torch.Generator().manual_seed(seed)
    style = torch.arange(n_items) % 2
    visual = torch.randn(n_items, 16, generator=g) * 0.3
    visual[:, 0] += style * 2.0 - 1.0
    text = torch.randn(n_items, 12, generator=g)
    features = ItemFeatures([f"i{k}" for k in range(n_items)], visual, text,
                            torch.ones(n_items, dtype=torch.bool))
    matrix = {f"u{u}": {f"i{k}": 2.0 if visual[k, 1] > 0 else 1.0
                        for k in range(n_items) if style[k] == u % 2}
              for u in range(n_users)}
    return matrix, features


def test_training_lowers_validation_loss() -> None:
    matrix, features = _toy()
    trainer = Trainer(matrix, features, TrainConfig(lr=3e-3, epochs=1, seed=1, progress=False,
                                                    batch_size=32), SMALL)
    before = trainer.validation_loss()
    trainer.config.epochs = 25
    result = trainer.fit()
    assert result.best_val < 0.25 * before
    assert result.history[result.best_epoch - 1]["val"] == pytest.approx(trainer.validation_loss())


def test_early_stopping_respects_patience() -> None:
    matrix, features = _toy()
    config = TrainConfig(lr=0.3, epochs=40, patience=2, seed=0, progress=False)  # unstable lr
    result = train(matrix, features, config, SMALL)
    assert len(result.history) < 40
    assert len(result.history) - result.best_epoch == 2


@pytest.mark.parametrize("loss", ["bpr", "bce"])
def test_ranking_losses_train(loss: str) -> None:
    matrix, features = _toy()
    result = train(matrix, features, TrainConfig(lr=3e-3, epochs=6, loss=loss, progress=False,
                                                 batch_size=32), SMALL)
    assert result.history[-1]["train"] < result.history[0]["train"]


def test_same_seed_same_model() -> None:
    matrix, features = _toy()
    config = TrainConfig(lr=1e-3, epochs=2, seed=4, progress=False)
    a, b = train(matrix, features, config, SMALL), train(matrix, features, config, SMALL)
    assert [h["val"] for h in a.history] == [h["val"] for h in b.history]


def test_artefacts_round_trip(tmp_path) -> None:
    matrix, features = _toy()
    result = train(matrix, features, TrainConfig(lr=1e-3, epochs=2, progress=False), SMALL)
    path = save_result(result, tmp_path, version="toy-1")
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert json.loads((tmp_path / "history.json").read_text())["best_epoch"] == result.best_epoch
    loaded = load_checkpoint(path)
    assert loaded.users == sorted(matrix) and loaded.version == "toy-1"
    with torch.no_grad():
        assert torch.equal(loaded.model.fuse(features.visual, features.text),
                           result.model.fuse(features.visual, features.text))


def test_unknown_items_and_bad_config_are_reported() -> None:
    _, features = _toy()
    with pytest.raises(ValueError, match="no \\(user, item\\) pair has item features"):
        Trainer({"u": {"nope": 1.0}}, features, TrainConfig(progress=False), SMALL)
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig(loss="hinge")
