"""Event contract: what is accepted, and the reason given for what is not."""

from __future__ import annotations

import base64
import json

import pytest

from streams.contract import InvalidEvent, dead_letter_record, parse_event

NOW = 1_800_000_000.0


def event(**overrides: object) -> bytes:
    base = {"event_id": "e1", "user_id": "u1", "item_id": 42, "behavior": "click",
            "timestamp": "2026-11-01T10:00:00+01:00", "extra": "ignored"}
    base.update(overrides)
    return json.dumps({k: v for k, v in base.items() if v is not None}).encode()


def test_valid_event_normalised() -> None:
    e = parse_event(event(lat=48.85, lon=2.35), now=NOW)
    assert (e.behavior, e.item_id, e.lat) == ("view", "42", 48.85)
    assert e.timestamp == pytest.approx(1793523600.0)
    assert parse_event(event(timestamp=1.7e9), now=NOW).timestamp == 1.7e9


@pytest.mark.parametrize("raw, reason", [
    (b"", "empty"),
    (b"\xff\xfe", "not_utf8"),
    (b"{nope", "not_json"),
    (b"[1,2]", "not_an_object"),
    (event(event_id=None), "missing_event_id"),
    (event(user_id=""), "bad_user_id"),
    (event(item_id={"a": 1}), "bad_item_id"),
    (event(behavior="wishlist"), "unknown_behavior"),
    (event(timestamp=None), "missing_timestamp"),
    (event(timestamp="yesterday"), "bad_timestamp"),
    (event(timestamp="2026-11-01T10:00:00"), "bad_timestamp"),
    (event(timestamp=1.7e12), "future_timestamp"),
    (event(timestamp=12), "bad_timestamp"),
    (event(timestamp=True), "bad_timestamp"),
    (event(lat=91.0, lon=0.0), "bad_lat"),
    (event(lat=10.0), "bad_location"),
    (b"[" * 100000, "not_json"),
])
def test_invalid_events_have_reasons(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw, now=NOW)
    assert info.value.reason == reason
    assert info.value.detail


def test_dead_letter_keeps_original_bytes() -> None:
    raw = b"\xff not utf8"
    record = json.loads(dead_letter_record(raw, InvalidEvent("not_utf8", "x"), "t", 1, 7))
    assert base64.b64decode(record["original_b64"]) == raw
    assert (record["reason"], record["partition"], record["offset"]) == ("not_utf8", 1, 7)
    assert "original_text" not in record
