"""The behaviour-event contract (docs/design.md "Topic contracts") and its validation.

An event is UTF-8 JSON with ``event_id``, ``user_id``, ``item_id``, ``behavior`` in
``view|favorite|cart|purchase`` (``click`` is accepted as ``view``; paper 000 §3.2.1 calls it
"browsing") and ``timestamp`` (event time: epoch seconds, or ISO-8601 with a zone). Optional:
``session_id``, ``store_id``, ``lat``, ``lon``. Unknown fields are ignored.

Limits (:class:`streams.config.InputLimits`, from ``STYLESTREAM_*`` settings): the message size,
the identifier length and the accepted event-time range; hostile input of any shape (random
bytes, deep JSON, NaN/±inf, huge numbers, control characters, wrong types) ends as an
:class:`InvalidEvent` with its reason (``tests/test_fuzz_input.py``).

:func:`parse_event` never raises anything but :class:`InvalidEvent`, whose ``reason`` is a short
machine-readable code and whose message says what is wrong in words; the ingest agent sends such
records to the dead-letter topic with both.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from models.behaviors import BEHAVIORS
from streams.config import InputLimits

BEHAVIOR_ALIASES: dict[str, str] = {"click": "view", "pv": "view", "fav": "favorite",
                                    "buy": "purchase", "add_to_cart": "cart"}
DEFAULT_LIMITS = InputLimits()
MAX_ID_LENGTH = DEFAULT_LIMITS.max_id_length
#: Events before 2000-01-01 are certainly wrong (a unit or parsing error upstream).
MIN_TIMESTAMP = DEFAULT_LIMITS.min_timestamp
#: Clock skew allowed for producers; beyond it an event is refused as "from the future".
DEFAULT_MAX_FUTURE_SECONDS = DEFAULT_LIMITS.max_future_seconds


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


def _identifier(data: dict[str, Any], name: str, required: bool = True,
                max_length: int = MAX_ID_LENGTH) -> str | None:
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
    if len(text) > max_length:
        raise InvalidEvent(f"bad_{name}", f"{name} is longer than {max_length} characters")
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
                    max_future_seconds: float = DEFAULT_MAX_FUTURE_SECONDS,
                    min_timestamp: float = MIN_TIMESTAMP) -> float:
    """Epoch seconds (int/float/numeric string) or ISO-8601 with a zone → epoch seconds."""
    if value is None:
        raise InvalidEvent("missing_timestamp", "field 'timestamp' is required")
    if isinstance(value, bool):
        raise InvalidEvent("bad_timestamp", "timestamp must be epoch seconds or ISO-8601")
    if isinstance(value, int | float):
        seconds = float(value) if abs(value) < 1e300 else math.inf
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                seconds = _parse_iso(text).timestamp()
            except (OverflowError, OSError, ValueError):
                raise InvalidEvent("bad_timestamp", f"timestamp {text[:40]!r} is out of "
                                   "range") from None
    else:
        raise InvalidEvent("bad_timestamp", f"timestamp must be a number or string, got "
                                            f"{type(value).__name__}")
    if not math.isfinite(seconds):
        raise InvalidEvent("bad_timestamp", "timestamp is not finite")
    now = time.time() if now is None else now
    if seconds > now + max_future_seconds:
        hint = " (milliseconds? send seconds)" if seconds > 1e11 else ""
        raise InvalidEvent("future_timestamp", f"timestamp {seconds:.0f} is in the future{hint}")
    if seconds < min_timestamp:
        raise InvalidEvent("bad_timestamp", f"timestamp {seconds:.0f} is before the earliest "
                           f"accepted ({min_timestamp:.0f})")
    return seconds


def _coordinate(data: dict[str, Any], name: str, bound: float) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(f"bad_{name}", f"{name} must be a number")
    if isinstance(value, float) and not math.isfinite(value) or abs(value) > bound:
        raise InvalidEvent(f"bad_{name}", f"{name} must lie within ±{bound}")
    return float(value)


#: Behaviour texts taken as they are by :func:`_well_formed` (already stripped and lower case).
_CANONICAL_BEHAVIORS: dict[str, str] = {**{b: b for b in BEHAVIORS}, **BEHAVIOR_ALIASES}


def _plain_identifier(value: Any, max_length: int) -> bool:
    """Whether ``value`` is an identifier :func:`_identifier` keeps exactly as it is."""
    return (type(value) is str and 0 < len(value) <= max_length and value.isprintable()
            and not value[0].isspace() and not value[-1].isspace())


def _well_formed(data: dict[str, Any], now: float | None, future: float,
                 limits: InputLimits) -> BehaviorEvent | None:
    """The event of a record in the common shape (string identifiers that need no stripping,
    a canonical behaviour, a numeric timestamp in range, no location), built with fewer checks
    and calls than :func:`validate_event`'s general path and equal to what that path builds;
    ``None`` for anything else (the general path then decides, with its reasons)."""
    raw_behavior = data.get("behavior")
    behavior = _CANONICAL_BEHAVIORS.get(raw_behavior) if type(raw_behavior) is str else None
    timestamp = data.get("timestamp")
    if (behavior is None or data.get("lat") is not None or data.get("lon") is not None
            or (type(timestamp) is not float and type(timestamp) is not int)):
        return None
    n = limits.max_id_length
    event_id, user_id, item_id = data.get("event_id"), data.get("user_id"), data.get("item_id")
    session_id, store_id = data.get("session_id"), data.get("store_id")
    if not (_plain_identifier(event_id, n) and _plain_identifier(user_id, n)
            and _plain_identifier(item_id, n)
            and (session_id is None or _plain_identifier(session_id, n))
            and (store_id is None or _plain_identifier(store_id, n))):
        return None
    if not -1e300 < timestamp < 1e300:
        return None
    seconds = float(timestamp)
    if not (limits.min_timestamp <= seconds <= (time.time() if now is None else now) + future):
        return None
    return BehaviorEvent(event_id, user_id, item_id, behavior, seconds, session_id, store_id)


def validate_event(data: Any, now: float | None = None,
                   max_future_seconds: float | None = None,
                   limits: InputLimits = DEFAULT_LIMITS) -> BehaviorEvent:
    """A decoded JSON value → :class:`BehaviorEvent`, or :class:`InvalidEvent`.

    ``max_future_seconds`` overrides ``limits.max_future_seconds`` (tools reading history)."""
    future = limits.max_future_seconds if max_future_seconds is None else max_future_seconds
    if type(data) is dict:
        event = _well_formed(data, now, future, limits)
        if event is not None:
            return event
    return _validate_any(data, now, future, limits)


def _validate_any(data: Any, now: float | None, future: float,
                  limits: InputLimits) -> BehaviorEvent:
    """:func:`validate_event` for any decoded value: every check, each with its reason."""
    if not isinstance(data, dict):
        raise InvalidEvent("not_an_object", f"event must be a JSON object, got "
                                            f"{type(data).__name__}")
    raw_behavior = data.get("behavior")
    if raw_behavior is None:
        raise InvalidEvent("missing_behavior", "field 'behavior' is required")
    if not isinstance(raw_behavior, str):
        raise InvalidEvent("unknown_behavior", f"behavior must be a string, got "
                                               f"{type(raw_behavior).__name__}")
    behavior = raw_behavior.strip().lower()
    behavior = BEHAVIOR_ALIASES.get(behavior, behavior)
    if behavior not in BEHAVIORS:
        raise InvalidEvent("unknown_behavior", f"behavior {str(raw_behavior)[:40]!r} is not one "
                                               f"of {'|'.join(BEHAVIORS)} (or click)")
    lat = _coordinate(data, "lat", 90.0)
    lon = _coordinate(data, "lon", 180.0)
    if (lat is None) != (lon is None):
        raise InvalidEvent("bad_location", "lat and lon must come together")
    n = limits.max_id_length
    return BehaviorEvent(
        event_id=_identifier(data, "event_id", max_length=n),  # type: ignore[arg-type]
        user_id=_identifier(data, "user_id", max_length=n),  # type: ignore[arg-type]
        item_id=_identifier(data, "item_id", max_length=n),  # type: ignore[arg-type]
        behavior=behavior,
        timestamp=parse_timestamp(data.get("timestamp"), now, future, limits.min_timestamp),
        session_id=_identifier(data, "session_id", required=False, max_length=n),
        store_id=_identifier(data, "store_id", required=False, max_length=n),
        lat=lat,
        lon=lon,
    )


def parse_event(raw: bytes | str | None, now: float | None = None,
                max_future_seconds: float | None = None,
                limits: InputLimits = DEFAULT_LIMITS) -> BehaviorEvent:
    """Message bytes → :class:`BehaviorEvent`; anything wrong → :class:`InvalidEvent`.

    Never raises anything else: an unforeseen failure of the checks is reported as reason
    ``unreadable`` (the fuzz tests hold that it does not happen) rather than stopping the
    worker."""
    try:
        return _parse_event(raw, now, max_future_seconds, limits)
    except InvalidEvent:
        raise
    except Exception as exc:  # noqa: BLE001 - bad input must never stop the ingest worker
        raise InvalidEvent("unreadable", f"record could not be checked "
                                         f"({type(exc).__name__})") from None


def _parse_event(raw: bytes | str | None, now: float | None, max_future_seconds: float | None,
                 limits: InputLimits) -> BehaviorEvent:
    if raw is None or len(raw) == 0:
        raise InvalidEvent("empty", "message value is empty")
    if len(raw) > limits.max_message_bytes:
        raise InvalidEvent("too_large", f"message value has {len(raw)} bytes, more than the "
                                        f"{limits.max_message_bytes} accepted")
    # orjson first (several times faster than json); a record in the common shape is checked
    # on the short path. Anything else — orjson refusing it (NaN, integers past 64 bits, lone
    # surrogates, bad UTF-8: json may accept some) or an unusual shape — is decoded again by
    # json and checked in full, so every record gets exactly the outcome and reason it gets
    # from json and the full checks alone.
    future = limits.max_future_seconds if max_future_seconds is None else max_future_seconds
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    else:
        if type(data) is dict:
            event = _well_formed(data, now, future, limits)
            if event is not None:
                return event
    return _validate_any(_json_value(raw), now, future, limits)


def _json_value(raw: bytes | bytearray | str) -> Any:
    """The record decoded by json (its failures as :class:`InvalidEvent` with their reason)."""
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
    return data


def dead_letter_record(raw: bytes | None, error: InvalidEvent, topic: str, partition: int,
                       offset: int, failed_at: float | None = None,
                       keep_bytes: int = DEFAULT_LIMITS.max_message_bytes) -> bytes:
    """The DLQ message: the original bytes (base64, exact) beside the reason and provenance.

    ``original_text`` repeats the bytes as text when they are valid UTF-8, for people reading.
    A value longer than ``keep_bytes`` (refused as too large) keeps only its first ``keep_bytes``
    bytes, flagged ``original_truncated`` with the full ``original_size`` and ``original_sha256``,
    so the dead letter itself stays small enough to publish.
    """
    original = raw or b""
    kept = original[:keep_bytes]
    record: dict[str, Any] = {
        "reason": error.reason,
        "detail": error.detail,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "failed_at": time.time() if failed_at is None else failed_at,
        "original_b64": base64.b64encode(kept).decode("ascii"),
    }
    if len(kept) < len(original):
        record.update(original_truncated=True, original_size=len(original),
                      original_sha256=hashlib.sha256(original).hexdigest())
    try:
        record["original_text"] = kept.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return json.dumps(record, separators=(",", ":")).encode()
