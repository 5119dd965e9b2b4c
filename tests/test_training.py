"""Training (paper 000 Eq. 21, §4.1.3): learns a toy preference, early-stops, saves artefacts."""

from __future__ import annotations

import json

import pytest
import torch

from models.fusion import load_checkpoint
from models.training import TrainConfig, Trainer, save_result, train
from tests.fusion_toy import SMALL, toy_problem

torch.set_num_threads(1)
def test_training_lowers_validation_loss() -> None:
    matrix, features = toy_problem()
    trainer = Trainer(matrix, features, TrainConfig(lr=3e-3, epochs=1, seed=1, progress=False,
                                                    batch_size=32), SMALL)
    before = trainer.validation_loss()
    trainer.config.epochs = 25
    result = trainer.fit()
    assert result.best_val < 0.25 * before
    assert result.history[result.best_epoch - 1]["val"] == pytest.approx(trainer.validation_loss())


def test_early_stopping_respects_patience() -> None:
    matrix, features = toy_problem()
    config = TrainConfig(lr=0.3, epochs=40, patience=2, seed=0, progress=False)  # unstable lr
    result = train(matrix, features, config, SMALL)
    assert len(result.history) < 40
    assert len(result.history) - result.best_epoch == 2


@pytest.mark.parametrize("loss", ["bpr", "bce"])
def test_ranking_losses_train(loss: str) -> None:
    matrix, features = toy_problem()
    result = train(matrix, features, TrainConfig(lr=3e-3, epochs=6, loss=loss, progress=False,
                                                 batch_size=32), SMALL)
    assert result.history[-1]["train"] < result.history[0]["train"]


def test_same_seed_same_model() -> None:
    matrix, features = toy_problem()
    config = TrainConfig(lr=1e-3, epochs=2, seed=4, progress=False)
    a, b = train(matrix, features, config, SMALL), train(matrix, features, config, SMALL)
    assert [h["val"] for h in a.history] == [h["val"] for h in b.history]


def test_artefacts_round_trip(tmp_path) -> None:
    matrix, features = toy_problem()
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
    _, features = toy_problem()
    with pytest.raises(ValueError, match="no \\(user, item\\) pair has item features"):
        Trainer({"u": {"nope": 1.0}}, features, TrainConfig(progress=False), SMALL)
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig(loss="hinge")
