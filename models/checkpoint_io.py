"""Checkpoint files: written atomically (a reader never sees half a file), read back with
``weights_only=True`` and clear errors for a missing, unreadable or foreign file."""

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


def load_payload(path: str | Path, model_format: str, *, what: str, missing_hint: str,
                 map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The saved payload of a ``model_format`` checkpoint; ``FileNotFoundError`` (with
    ``missing_hint``) or ``ValueError`` (naming ``what``) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}: {missing_hint}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors have no common base class
        raise ValueError(f"{path} is not a readable {what}: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != model_format:
        raise ValueError(f"{path} is not a {model_format} checkpoint")
    return payload
