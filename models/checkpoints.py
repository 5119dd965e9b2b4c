"""Checkpoint files of the project's networks: written atomically, read with ``weights_only``.

One format rule for every network (the fusion ranker, the final next-event ranker): a dict
payload with a ``format`` tag, saved to a temporary file and renamed over the target (a
hot-reloading worker never reads half a file), and loaded with ``torch.load(weights_only=True)``
(no code runs from a checkpoint) with one clear error for a missing, unreadable or foreign file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def save_payload(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file + rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def load_payload(path: str | Path, expected_format: str, missing_hint: str,
                 map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The payload at ``path`` when it carries ``expected_format``; ``FileNotFoundError``
    (with ``missing_hint``) or ``ValueError`` otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}: {missing_hint}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling errors have no common base class
        raise ValueError(f"{path} is not a readable {expected_format} checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != expected_format:
        raise ValueError(f"{path} is not a {expected_format} checkpoint")
    return payload


def save_model(path: str | Path, model_format: str, model: nn.Module, *, version: str,
               extra: dict[str, Any] | None = None, **fields: Any) -> Path:
    """A network's checkpoint: ``{format, version, config, <fields>, state_dict, extra}``, its
    ``config`` the network's config dataclass, written by :func:`save_payload`."""
    return save_payload(path, {"format": model_format, "version": version,
                               "config": asdict(model.config), **fields,  # type: ignore[arg-type]
                               "state_dict": model.state_dict(), "extra": extra or {}})


def load_model(path: str | Path, model_format: str, missing_hint: str,
               build: Callable[[dict[str, Any]], M],
               map_location: str | torch.device = "cpu") -> tuple[M, dict[str, Any]]:
    """The network of a :func:`save_model` checkpoint (``build`` makes it from the saved
    config), in eval mode, and the whole payload (for the caller's fields)."""
    payload = load_payload(path, model_format, missing_hint, map_location)
    model = build(payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return model, payload
