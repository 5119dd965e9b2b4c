"""The README's copy-paste kafka-python examples ("For producers", "For subscribers"), run
verbatim against the embedded broker: a producer whose event breaks the contract, a watcher
that misses lists or waits for a group join, or a group consumer that still waits ~23 s, fails
here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from scripts.embedded import EmbeddedServices, stop_processes
from streams.contract import parse_event
from tests.streaming_helpers import produce, read_until
from tests.web_helpers import recommendation

README = Path(__file__).resolve().parent.parent / "README.md"


def section_code(title: str) -> list[str]:
    """The ```python blocks of one README section."""
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end if end > 0 else None], re.S)


def test_producer_example_sends_an_event_of_the_contract(services: EmbeddedServices) -> None:
    """Catches a producer example that does not run or sends an event the ingest worker
    would dead-letter (wrong fields, key, or encoding)."""
    (code,) = section_code("For producers")
    env = dict(os.environ, **services.env())
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
    records = read_until(services, "behavior-events", lambda rs: len(rs) >= 1, timeout=30)
    assert len(records) == 1
    event = parse_event(records[0].value)
    assert records[0].key == event.user_id.encode() == b"u42"
    assert event.behavior == "cart" and abs(event.timestamp - time.time()) < 60


def test_subscriber_examples_print_lists_without_the_group_join_wait(
        services: EmbeddedServices) -> None:
    """Catches subscriber examples that do not run, print nothing for lists produced while
    they run, or (the group example) still wait for a default-length group join."""
    watcher_code, group_code = section_code("For subscribers")
    env = dict(os.environ, **services.env())
    procs = {name: subprocess.Popen([sys.executable, "-c", code], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
             for name, code in (("watcher", watcher_code), ("group", group_code))}
    started = time.monotonic()
    first: dict[str, float] = {}
    lines: dict[str, list[str]] = {name: [] for name in procs}

    def read(name: str) -> None:
        for line in procs[name].stdout:  # type: ignore[union-attr]
            first.setdefault(name, time.monotonic() - started)
            lines[name].append(line)

    readers = [threading.Thread(target=read, args=(n,), daemon=True) for n in procs]
    for reader in readers:
        reader.start()
    try:
        k = 0
        while time.monotonic() - started < 20 and len(first) < 2:
            produce(services, "recommendations",
                    [(b"ana", recommendation("ana", [f"i{k}-{j}" for j in range(5)]))])
            k += 1
            time.sleep(0.5)
    finally:
        stop_processes(*procs.values(), timeout=5)
        for reader in readers:
            reader.join(timeout=5)
    assert set(first) == {"watcher", "group"}, (first, lines)
    for name in procs:
        assert lines[name][0].startswith("ana ['i"), lines[name][0]
    # python start-up + imports take a few seconds on a busy machine; a default group join
    # would add ~23 s, the README's short session timeout ~3 s
    assert first["watcher"] < 12 and first["group"] < 15, first
