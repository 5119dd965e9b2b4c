"""`stylestream prepare` (the deployment's init) with a mounted data folder, and its errors."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from models.catalog import load_catalog
from models.demo_catalog import generate_demo_catalog

REPO = Path(__file__).resolve().parent.parent


def prepare(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.cli", "prepare", "--home", str(home),
                           *args], capture_output=True, text=True, cwd=REPO, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))


def test_prepare_uses_the_mounted_catalog_and_events(tmp_path: Path) -> None:
    """Catches an init that ignores the mounted data (drawing the demo catalog or simulating
    shoppers although a catalog and events are there), a copied catalog whose relative image
    paths no longer resolve, and a second run that rebuilds what exists."""
    data, home = tmp_path / "data", tmp_path / "home"
    generate_demo_catalog(data, n_items=30, seed=5)
    items = sorted(load_catalog(data))
    with (data / "events.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "item_id", "behavior", "timestamp"])
        for k in range(300):
            writer.writerow([f"shopper{k % 7}", items[(k * 5 + k // 7) % len(items)],
                             ("view", "cart", "purchase")[k % 3], 1_750_000_000 + 60 * k])
    done = prepare("--data", str(data), "--epochs", "1", home=home)
    assert done.returncode == 0, done.stderr
    copied = load_catalog(home / "catalog")
    assert sorted(copied) == items
    assert all(Path(i.image).is_absolute() and Path(i.image).is_file() and
               Path(i.image).is_relative_to(data) for i in copied.values() if i.image)
    assert (home / "catalog" / "stores.json").is_file()
    assert not (home / "history.csv").exists()  # trained on the mounted events
    assert str(data / "events.csv") in done.stdout
    checkpoint = home / "model" / "model.pt"
    stamp = checkpoint.stat().st_mtime_ns
    assert not (home / "model" / "next").exists()

    again = prepare("--data", str(data), home=home)
    assert again.returncode == 0 and "kept" in again.stdout
    assert "stylestream features" not in again.stdout and "stylestream train" not in again.stdout
    assert checkpoint.stat().st_mtime_ns == stamp


def test_prepare_refuses_bad_input_clearly(tmp_path: Path) -> None:
    """Catches a missing data folder or nonsense sizes ending in a traceback (or silently in
    the demo fallback) instead of a one-line error."""
    missing = prepare("--data", str(tmp_path / "nowhere"), home=tmp_path / "home")
    assert missing.returncode == 2 and "is not a directory" in missing.stderr
    zero = prepare("--epochs", "0", home=tmp_path / "home")
    assert zero.returncode == 2 and "--epochs" in zero.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "catalog.jsonl").write_text("{not json\n")
    broken = prepare("--data", str(bad), home=tmp_path / "home2")
    assert broken.returncode == 2 and "catalog.jsonl:1" in broken.stderr
    assert "Traceback" not in missing.stderr + zero.stderr + broken.stderr
