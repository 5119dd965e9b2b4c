"""The contract's short path (orjson + the common-shape check) gives every record exactly the
outcome of the full path (json + every check): the same event, or the same reason and detail.

Catches a short path that accepts what the full path refuses (or the reverse), normalises a
field differently (whitespace, aliases, integer identifiers, integers past 64 bits that orjson
reads as floats), or changes a dead-letter reason."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.config import InputLimits
from streams.contract import InvalidEvent, _json_value, _validate_any, parse_event

NOW = 1_800_000_000.0
LIMITS = InputLimits()

field_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([2**64, -(2**63) - 1, 10**30, 10**400, NOW - 60, NOW + 10**6, 1e300, 0,
                     "1.7e9", "2026-11-01T10:00:00+01:00", "", " ", " u1", "u1 ", "\x00",
                     "\u00a0u", "u\u2028", "x" * 300, "view", "View", " cart", "click", "pv",
                     "fav", "purchase", "favorite", "buy", "add_to_cart", "unknown", "\ud800"]),
    st.text(max_size=8), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))
FIELDS = ("event_id", "user_id", "item_id", "behavior", "timestamp", "session_id", "store_id",
          "lat", "lon")


def outcome(raw: bytes) -> object:
    """The event, or the reason and detail of the refusal."""
    try:
        return parse_event(raw, now=NOW, limits=LIMITS)
    except InvalidEvent as error:
        return (error.reason, error.detail)


def full_path(raw: bytes) -> object:
    try:
        return _validate_any(_json_value(raw), NOW, LIMITS.max_future_seconds, LIMITS)
    except InvalidEvent as error:
        return (error.reason, error.detail)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional={name: field_values for name in FIELDS}),
       st.sampled_from(["view", "cart", "click", "purchase"]),
       st.floats(min_value=LIMITS.min_timestamp, max_value=NOW))
def test_short_path_equals_full_path(fields: dict, behavior: str, timestamp: float) -> None:
    """Records near the common shape (a valid base with fields replaced or dropped)."""
    base = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "behavior": behavior,
            "timestamp": timestamp}
    for record in (fields, {**base, **fields}, base):
        raw = json.dumps(record).encode()
        assert outcome(raw) == full_path(raw), record


def test_integer_past_64_bits_keeps_its_digits() -> None:
    """orjson reads 2**64 as a float: the record still gets json's integer identifier."""
    raw = json.dumps({"event_id": 2**64, "user_id": "u", "item_id": 10**30, "behavior": "view",
                      "timestamp": NOW - 5}).encode()
    event = parse_event(raw, now=NOW)
    assert (event.event_id, event.item_id) == (str(2**64), str(10**30))


def test_json_only_literals_get_their_reason() -> None:
    """NaN is refused by orjson but read by json: the timestamp's reason, not not_json."""
    raw = b'{"event_id":"e","user_id":"u","item_id":"i","behavior":"view","timestamp":NaN}'
    assert outcome(raw) == ("bad_timestamp", "timestamp is not finite")
