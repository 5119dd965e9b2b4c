"""Reading a log the project has never seen for the replay (``evaluate --events/--future``).

A log handed to ``stylestream evaluate --protocol replay --events PATH`` may come from a later
slice of a public source, with other dates, other ids and its own untidiness. What is read, and
what is left out:

- the Taobao or H&M layout, with a header in any column order or without a header (the columns
  in the layout's order, as Tianchi ships ``UserBehavior.csv``), plain or gzip, LF or CRLF line
  ends, blank lines (:func:`models.datasets.read_events_csv`);
- rows that cannot be read (an unknown behaviour, an empty field, a timestamp or date that is not
  one, an H&M article id that is not a number of at most 10 digits) are left out and counted by
  reason; so are events the stream's contract refuses (:func:`streams.contract.validate_event`
  with the settings' limits: ids longer than ``STYLESTREAM_MAX_ID_LENGTH``, timestamps before
  2000 or in the future), which the live ingest worker would send to the dead-letter topic, so
  the live workers and the offline twin read the same events;
- exact duplicate rows count once; rows need not be in time order.

A log with no readable event is a :class:`models.datasets.DatasetError` (one line). A
``--future`` file that is empty (no bytes, or a header only) means nothing to score.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evaluation.live_replay import event_json
from models.datasets import DatasetError, Interaction, read_events_csv
from streams.config import InputLimits
from streams.contract import InvalidEvent, parse_event


@dataclass
class ReadLog:
    """A log as read: its layout (``"taobao"`` or ``"hm"``), the events kept, and the rows left
    out by reason."""

    dataset: str
    events: list[Interaction]
    skipped: Counter[str] = field(default_factory=Counter)

    def note(self, path: str | Path) -> str | None:
        """One line naming what was left out of ``path`` (None when nothing was)."""
        if not self.skipped:
            return None
        reasons = ", ".join(f"{reason}: {n}" for reason, n in self.skipped.most_common())
        return f"{path}: left out {sum(self.skipped.values())} row(s) ({reasons})"


def contract_filter(events: Sequence[Interaction], limits: InputLimits,
                    skipped: Counter[str]) -> list[Interaction]:
    """The events the ingest worker's contract accepts, as the replay produces them; each
    refused one is counted in ``skipped`` as ``refused by the event contract: <reason>``."""
    kept = []
    for n, event in enumerate(events):
        try:
            parse_event(event_json(n, event), limits=limits)
        except InvalidEvent as exc:
            skipped[f"refused by the event contract: {exc.reason}"] += 1
            continue
        kept.append(event)
    return kept


def read_log(path: str | Path, level: str, limits: InputLimits) -> ReadLog:
    """The events of ``path`` the replay can use (see the module docstring)."""
    skipped: Counter[str] = Counter()
    dataset, events = read_events_csv(path, level=level, skipped=skipped)
    events = contract_filter(events, limits, skipped)
    if not events:
        left = f" ({sum(skipped.values())} row(s) left out: {dict(skipped)})" if skipped else ""
        raise DatasetError(f"{path}: no readable event{left}")
    return ReadLog(dataset, events, skipped)


def read_future(path: str | Path, level: str, limits: InputLimits) -> ReadLog:
    """Like :func:`read_log`, but an empty file (no bytes, or a header only) is an empty
    future rather than an error."""
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        return ReadLog("", [])
    skipped: Counter[str] = Counter()
    dataset, events = read_events_csv(path, level=level, skipped=skipped)
    return ReadLog(dataset, contract_filter(events, limits, skipped), skipped)
