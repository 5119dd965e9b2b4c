"""Checkpoint files written atomically: a reader never sees half a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def save_atomically(payload: dict[str, Any], path: str | Path) -> Path:
    """``torch.save(payload)`` to ``path`` through a temporary file and an atomic rename
    (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path
