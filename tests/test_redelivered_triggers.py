"""A batch that comes back after a crash still refreshes its shoppers' lists.

An ingest worker that dies after its Redis step but before its refresh triggers are acknowledged
does not commit the batch's offsets; the worker that reads the batch again finds every event a
duplicate. The triggers must still go out, or those shoppers keep a list older than their last
event (the fault suite's ``ingest-handover`` phase saw this as stale lists)."""

from __future__ import annotations

import json
import time

from scripts.embedded import EmbeddedServices
from tests.streaming_helpers import event_bytes, produce, read_until, running


def triggers_for(records: list, user: str) -> int:
    return sum(1 for r in records if json.loads(r.value)["user_id"] == user)


def test_a_redelivered_event_still_triggers_its_shoppers_refresh(
        services: EmbeddedServices) -> None:
    """Catches refresh triggers sent only for newly applied events: the second delivery of the
    same event (a duplicate in Redis) must emit a trigger for its shopper again."""
    event = event_bytes("redelivered-1", "redelivered", "sku1", "view", time.time())
    with running(services, ["stream"]):
        produce(services, "behavior-events", [(b"k", event)])
        first = read_until(services, "rec-refresh",
                           lambda rs: triggers_for(rs, "redelivered") >= 1, timeout=60)
        assert triggers_for(first, "redelivered") == 1
        produce(services, "behavior-events", [(b"k", event)])  # the same event id again
        both = read_until(services, "rec-refresh",
                          lambda rs: triggers_for(rs, "redelivered") >= 2, timeout=60)
    assert triggers_for(both, "redelivered") == 2
