"""The behaviour-event contract (docs/design.md "Topic contracts") and its validation.

An event is UTF-8 JSON with ``event_id``, ``user_id``, ``item_id``, ``behavior`` in
``view|favorite|cart|purchase`` (``click`` is accepted as ``view``; paper 000 §3.2.1 calls it
"browsing") and ``timestamp`` (event time: epoch seconds, or ISO-8601 with a zone). Optional:
``session_id``, ``store_id``, ``lat``, ``lon``. Unknown fields are ignored.

:func:`parse_event` never raises anything but :class:`InvalidEvent`, whose ``reason`` is a short
machine-readable code and whose message says what is wrong in words; the ingest agent sends such
records to the dead-letter topic with both.
"""

from __future__ import annotations

import base64
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from models.behaviors import BEHAVIORS

BEHAVIOR_ALIASES: dict[str, str] = {"click": "view", "pv": "view", "fav": "favorite",
                                    "buy": "purchase", "add_to_cart": "cart"}
MAX_ID_LENGTH = 256
#: Events before 2000-01-01 are certainly wrong (a unit or parsing error upstream).
MIN_TIMESTAMP = 946_684_800.0
#: Clock skew allowed for producers; beyond it an event is refused as "from the future".
DEFAULT_MAX_FUTURE_SECONDS = 86_400.0


class InvalidEvent(ValueError):
    """An event that breaks the contract; ``reason`` is a short code for counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class BehaviorEvent:
    event_id: str
    user_id: str
    item_id: str
    behavior: str
    timestamp: float
    session_id: str | None = None
    store_id: str | None = None
    lat: float | None = None
    lon: float | None = None


def _identifier(data: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise InvalidEvent(f"missing_{name}", f"field {name!r} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEvent(f"bad_{name}", f"{name} must be a string or integer, got "
                                          f"{type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise InvalidEvent(f"bad_{name}", f"{name} is empty")
    if len(text) > MAX_ID_LENGTH:
        raise InvalidEvent(f"bad_{name}", f"{name} is longer than {MAX_ID_LENGTH} characters")
    if not text.isprintable():
        raise InvalidEvent(f"bad_{name}", f"{name} contains control characters")
    return text


def _parse_iso(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidEvent("bad_timestamp", f"cannot parse timestamp {text[:40]!r}: "
                           "expected epoch seconds or ISO-8601 with zone") from None
    if parsed.tzinfo is None:
        raise InvalidEvent("bad_timestamp", f"timestamp {text[:40]!r} has no time zone")
    return parsed


def parse_timestamp(value: Any, now: float | None = None,
                    max_future_seconds: float = DEFAULT_MAX_FUTURE_SECONDS) -> float:
    """Epoch seconds (int/float/numeric string) or ISO-8601 with a zone → epoch seconds."""
    if value is None:
        raise InvalidEvent("missing_timestamp", "field 'timestamp' is required")
    if isinstance(value, bool):
        raise InvalidEvent("bad_timestamp", "timestamp must be epoch seconds or ISO-8601")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = _parse_iso(text).timestamp()
    else:
        raise InvalidEvent("bad_timestamp", f"timestamp must be a number or string, got "
                                            f"{type(value).__name__}")
    if not math.isfinite(seconds):
        raise InvalidEvent("bad_timestamp", "timestamp is not finite")
    now = time.time() if now is None else now
    if seconds > now + max_future_seconds:
        hint = " (milliseconds? send seconds)" if seconds > 1e11 else ""
        raise InvalidEvent("future_timestamp", f"timestamp {seconds:.0f} is in the future{hint}")
    if seconds < MIN_TIMESTAMP:
        raise InvalidEvent("bad_timestamp", f"timestamp {seconds:.0f} is before 2000-01-01")
    return seconds


def _coordinate(data: dict[str, Any], name: str, bound: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(f"bad_{name}", f"{name} must be a number")
    if not math.isfinite(value) or abs(value) > bound:
        raise InvalidEvent(f"bad_{name}", f"{name} must lie within ±{bound}")
    return float(value)


def validate_event(data: Any, now: float | None = None,
                   max_future_seconds: float = DEFAULT_MAX_FUTURE_SECONDS) -> BehaviorEvent:
    """A decoded JSON value → :class:`BehaviorEvent`, or :class:`InvalidEvent`."""
    if not isinstance(data, dict):
        raise InvalidEvent("not_an_object", f"event must be a JSON object, got "
                                            f"{type(data).__name__}")
    raw_behavior = data.get("behavior")
    if raw_behavior is None:
        raise InvalidEvent("missing_behavior", "field 'behavior' is required")
    behavior = str(raw_behavior).strip().lower()
    behavior = BEHAVIOR_ALIASES.get(behavior, behavior)
    if behavior not in BEHAVIORS:
        raise InvalidEvent("unknown_behavior", f"behavior {str(raw_behavior)[:40]!r} is not one "
                                               f"of {'|'.join(BEHAVIORS)} (or click)")
    lat = _coordinate(data, "lat", 90.0)
    lon = _coordinate(data, "lon", 180.0)
    if (lat is None) != (lon is None):
        raise InvalidEvent("bad_location", "lat and lon must come together")
    return BehaviorEvent(
        event_id=_identifier(data, "event_id"),  # type: ignore[arg-type]
        user_id=_identifier(data, "user_id"),  # type: ignore[arg-type]
        item_id=_identifier(data, "item_id"),  # type: ignore[arg-type]
        behavior=behavior,
        timestamp=parse_timestamp(data.get("timestamp"), now, max_future_seconds),
        session_id=_identifier(data, "session_id", required=False),
        store_id=_identifier(data, "store_id", required=False),
        lat=lat,
        lon=lon,
    )


def parse_event(raw: bytes | str | None, now: float | None = None,
                max_future_seconds: float = DEFAULT_MAX_FUTURE_SECONDS) -> BehaviorEvent:
    """Message bytes → :class:`BehaviorEvent`; anything wrong → :class:`InvalidEvent`."""
    if raw is None or len(raw) == 0:
        raise InvalidEvent("empty", "message value is empty")
    if isinstance(raw, bytes | bytearray):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent("not_utf8", "message value is not UTF-8") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise InvalidEvent("not_json", f"message value is not JSON ({exc.msg} at "
                                       f"{exc.pos})") from None
    except RecursionError:
        raise InvalidEvent("not_json", "message value nests too deeply") from None
    return validate_event(data, now, max_future_seconds)


def dead_letter_record(raw: bytes | None, error: InvalidEvent, topic: str, partition: int,
                       offset: int, failed_at: float | None = None) -> bytes:
    """The DLQ message: the original bytes (base64, exact) beside the reason and provenance.

    ``original_text`` repeats the bytes as text when they are valid UTF-8, for people reading.
    """
    original = raw or b""
    record: dict[str, Any] = {
        "reason": error.reason,
        "detail": error.detail,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "failed_at": time.time() if failed_at is None else failed_at,
        "original_b64": base64.b64encode(original).decode("ascii"),
    }
    try:
        record["original_text"] = original.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return json.dumps(record, separators=(",", ":")).encode()
