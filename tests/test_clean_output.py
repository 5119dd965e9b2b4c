"""Clean output: progress bars only on a terminal, JSON log lines, no shutdown tracebacks."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

LOOP = ("import time\nfrom models.progress import progress\n"
        "for _ in progress(range(60), desc='work', every=0.5):\n    time.sleep(0.05)\n")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO))


def test_progress_is_a_few_lines_off_a_terminal_and_a_bar_on_one(tmp_path: Path) -> None:
    """Catches tqdm redrawing into a file (carriage returns, a line per update) and a helper
    that would never draw the bar on a real terminal (a pseudo-terminal here)."""
    out = tmp_path / "out.txt"
    with out.open("wb") as handle:
        subprocess.run([sys.executable, "-c", LOOP], stderr=handle, env=_env(), check=True,
                       cwd=REPO, timeout=60)
    text = out.read_text()
    lines = text.splitlines()
    assert "\r" not in text
    assert 3 <= len(lines) <= 10, lines  # ~3 s at one line per 0.5 s, plus the summary
    assert lines[-1].startswith("work: 100% 60/60")

    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", LOOP], stderr=secondary, env=_env(),
                            cwd=REPO)
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(main)
    drawn = b"".join(chunks).decode(errors="replace")
    assert "\r" in drawn and "|" in drawn  # tqdm's redrawn bar


def test_json_logs_are_one_object_per_line() -> None:
    """Catches JSON log records that span lines (a traceback printed raw) or lose the
    ``extra=`` fields and the exception text."""
    code = ("import logging\nfrom scripts.logs import setup_logging\n"
            "setup_logging(log_format='json')\nlog = logging.getLogger('probe')\n"
            "log.info('hello %s', 'world', extra={'user_id': 'u1'})\n"
            "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('failed')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=_env(), cwd=REPO, timeout=60)
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert len(records) == 2
    assert records[0]["message"] == "hello world" and records[0]["user_id"] == "u1"
    assert records[0]["level"] == "INFO" and records[0]["logger"] == "probe"
    assert records[1]["level"] == "ERROR" and "ZeroDivisionError" in records[1]["exception"]


def test_bench_ingest_output_in_a_file_is_clean(tmp_path: Path) -> None:
    """`stylestream bench ingest` with its output in a file (the case reported): catches
    progress-bar redraws written as hundreds of lines and kafka-python "Connection reset" /
    "socket disconnected" ERROR records from its own shutdown (clients outliving the broker)."""
    out = tmp_path / "bench.txt"
    with out.open("wb") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "scripts.cli", "bench", "ingest", "--only", "freshness",
             "--load", "100", "--load-seconds", "2", "--users", "50", "--items", "50",
             "--out", str(tmp_path / "bench" / "ingest.json")],
            stdout=handle, stderr=subprocess.STDOUT, env=_env(), cwd=REPO, timeout=300)
    text = out.read_text()
    assert done.returncode == 0, text
    assert "\r" not in text
    assert "Traceback" not in text and not re.search(r"\bERROR\b", text), text
    progress = [line for line in text.splitlines() if re.search(r"\d+%", line)]
    assert 1 <= len(progress) <= 10, progress
    assert "| batched agent (the product) |" in text and "| plain agent, one event" in text
