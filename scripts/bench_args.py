"""Command-line pieces every ``stylestream bench …`` shares."""

from __future__ import annotations

import argparse
from pathlib import Path


def json_out(raw: str) -> str:
    """``--out``: the JSON file a benchmark writes; a directory is refused at once (not after a
    run of minutes, when the result could no longer be written)."""
    if raw.endswith("/") or Path(raw).is_dir():
        raise argparse.ArgumentTypeError(
            f"{raw} is a directory; give the JSON file to write, e.g. "
            f"{raw.rstrip('/') or '.'}/result.json")
    return raw
