"""Running ``stylestream web`` against embedded services, for the web-view tests."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from scripts.embedded import EmbeddedServices, free_port, stop_processes, wait_for_port


@contextlib.contextmanager
def web_server(services: EmbeddedServices, catalog: Path | None,
               *extra: str) -> Iterator[str]:
    """``stylestream web`` as its own process on a free port; yields its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "scripts.cli", "web", "--port", str(port), *extra]
    if catalog is not None:
        cmd += ["--catalog", str(catalog)]
    proc = subprocess.Popen(cmd, env=dict(os.environ, **services.env()),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port("127.0.0.1", port, 30, proc, "stylestream web")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_processes(proc, timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def recommendation(user: str, items: list[str], source_event_time: float | None = None,
                   model: str = "test") -> bytes:
    """A list in the recommendation contract."""
    now = time.time()
    return json.dumps({"user_id": user, "generated_at": now, "model_version": model,
                       "source_event_time": source_event_time or now - 0.05,
                       "items": [{"item_id": item, "score": float(5 - k),
                                  "reasons": [f"reason {k}"]}
                                 for k, item in enumerate(items)]}).encode()
