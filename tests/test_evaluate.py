"""``stylestream evaluate`` end to end on tiny runs (the paper studies and the trend study),
protocol invariants."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evaluation.protocols import prepare
from scripts.cli import main


@pytest.fixture(scope="module")
def root(data_dir: Path) -> str:
    """The shared data directory (conftest's ``data_dir``)."""
    return str(data_dir)


def test_protocol_targets_exclude_training_items(root: str) -> None:
    for protocol in ("peruser", "temporal"):
        data = prepare("taobao", protocol, max_users=80, root=root)
        assert data.users.size > 0
        for seen, rel, touched in zip(data.seen, data.relevant, data.interacted, strict=True):
            assert seen.size and rel.size
            assert not np.intersect1d(seen, rel).size
            assert set(touched) == set(seen) | set(rel)


def test_evaluate_writes_all_tables_and_plots(tmp_path: Path, root: str) -> None:
    rc = main(["evaluate", "--dataset", "taobao", "--max-users", "60", "--seeds", "2",
               "--epochs", "2", "--models", "Random,Pop,ItemCF,LightGCN", "--out",
               str(tmp_path), "--data", root, "--no-progress"])
    assert rc == 0
    stem = tmp_path / "taobao-category_peruser_full"
    table2 = Path(f"{stem}_table2.md").read_text()
    for row in ("| Random |", "| Pop |", "| ItemCF |", "| LightGCN |", "| Proposed |"):
        assert row in table2
    assert "commit: `" in table2 and "±" in table2 and "Recall@20" in table2
    assert "paired bootstrap" in table2 and "| LightGCN | " in table2.split("paired")[1]
    table3 = Path(f"{stem}_table3.md").read_text()
    assert "w/o temporal attenuation" in table3 and "not measured" in table3
    for png in ("table2", "fig2"):
        assert Path(f"{stem}_{png}.png").read_bytes()[:4] == b"\x89PNG"
    sweep = json.loads(Path(f"{stem}_fig2.json").read_text())["results"]
    assert len(sweep) == 28 and "view=0.5" in sweep and "purchase=12" in sweep


def test_evaluate_hm_sampled_with_visual_features(tmp_path: Path, root: str) -> None:
    rc = main(["evaluate", "--dataset", "hm", "--protocol", "temporal", "--ranking", "sampled",
               "--max-users", "120", "--seeds", "1", "--epochs", "2", "--models", "Pop,VBPR",
               "--study", "compare", "--fusion-epochs", "1", "--fusion-loss", "mse", "--out",
               str(tmp_path), "--cache", str(tmp_path / "cache"), "--data", root,
               "--no-progress"])
    assert rc == 0
    result = json.loads((tmp_path / "hm_temporal_sampled_table2.json").read_text())
    assert set(result["results"]) == {"Pop", "VBPR", "Proposed", "Proposed: recall only",
                                      "Fusion network, all items"}
    assert 0.0 < result["data"]["cold_test_items"] <= 1.0
    assert "Recall@20" not in (tmp_path / "hm_temporal_sampled_table2.md").read_text()


def test_hm_fusion_system_ablations_and_cold_hit_rates(tmp_path: Path, root: str) -> None:
    """The served two-stage system (online recall + trained fusion network) offline on H&M, with
    the modality ablations and the cold-item hit rates; reduced sizes, one seed."""
    rc = main(["evaluate", "--dataset", "hm", "--protocol", "peruser", "--max-users", "40",
               "--seeds", "1", "--epochs", "1", "--fusion-epochs", "2", "--models", "Random,Pop",
               "--study", "paper", "--out", str(tmp_path / "out"), "--cache",
               str(tmp_path / "cache"), "--data", root, "--no-progress"])
    assert rc == 0
    table2 = json.loads((tmp_path / "out" / "hm_peruser_full_table2.json").read_text())
    results = table2["results"]
    assert set(results) == {"Random", "Pop", "Proposed", "Proposed, MSE loss (Eq. 21)",
                            "Proposed: recall only", "Fusion network, all items"}
    assert 0 < table2["data"]["content_items"] < table2["data"]["items"]
    for name, r in results.items():
        m = r["mean"]
        assert 0.0 <= m["HR@5"] <= m["HR@10"] <= 1.0, name
        assert 0.0 <= m["NDCG@5"] <= 1.0 and 0.0 <= m["Recall@20 cold"] <= 1.0, name
    # recall only can never reach an item nobody touched in training; the network can
    assert results["Proposed: recall only"]["mean"]["Recall@20 cold"] == 0.0
    table3 = (tmp_path / "out" / "hm_peruser_full_table3.md").read_text()
    for row in ("| w/o textual features | 0.", "| w/o visual features | 0.", "| Proposed | 0."):
        assert row in table3
    assert "not measured" not in table3
    # the feature store is built once and reused by the next run over the same items
    assert len(list((tmp_path / "cache").glob("hm-*/features/features-*"))) == 1


def test_bad_input_gives_clear_errors(tmp_path: Path, root: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--models", "SASRec", "--out", str(tmp_path), "--data", root]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["evaluate", "--max-users", "0"])


def test_evaluate_trend_study_from_the_command_line(tmp_path: Path, root: str) -> None:
    """``stylestream evaluate --study trend`` with a tiny configuration writes the report, the
    results and the three plots under OUT/trend/, with the options it was given.

    Catches: the trend study unreachable from the command (dispatch or import broken), its
    options not reaching the study (the settings written beside the results say what ran),
    and a run that ends without writing its outputs."""
    rc = main(["evaluate", "--study", "trend", "--items", "24", "--image-size", "32",
               "--users", "8", "--seeds", "2", "--backbones", "histogram",
               "--main-backbone", "histogram", "--no-mask", "--out", str(tmp_path),
               "--data", root, "--no-progress"])
    assert rc == 0
    out = tmp_path / "trend"
    for name in ("README.md", "results.json", "qualitative.png", "table1.png", "masking.png"):
        assert (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    settings = results["settings"]
    assert (settings["items"], settings["image_size"], settings["users"], settings["seeds"],
            settings["backbones"], settings["mask"]) == (24, 32, 8, 2, ["histogram"], False)
    assert list(results["table1"]) == ["Colour histogram"]
    assert "| Colour histogram |" in (out / "README.md").read_text()
    assert main(["evaluate", "--study", "trend", "--backbones", "alexnet", "--out",
                 str(tmp_path), "--data", root]) == 2


def test_tables_name_the_commit_they_were_made_at() -> None:
    """Catches the provenance line going blind: every table states the commit it was produced at,
    found from the package's own checkout (it read ``unknown`` after the package moved up a
    level and looked one folder too high)."""
    import re

    from evaluation.report import git_commit

    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", git_commit())
