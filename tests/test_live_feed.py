"""The web view's board: bounded memory, sliding-window rates, freshness, and bad records
counted instead of shown (pure logic; the topic readers are tested in test_web/test_tail)."""

from __future__ import annotations

from serving.live_feed import LiveBoard


def rec(user: str, source: float) -> dict:
    return {"user_id": user, "generated_at": source + 0.1, "model_version": "t",
            "source_event_time": source, "items": [{"item_id": "a", "score": 1.0,
                                                     "reasons": []}]}


def test_board_is_bounded_and_measures_rates_and_freshness() -> None:
    """Catches unbounded growth with many shoppers, rates that never forget old arrivals,
    freshness measured from the wrong clock, and malformed records shown as lists."""
    board = LiveBoard(max_users=3, events_per_user=2, window_seconds=10.0)
    for k in range(5):
        assert board.add_recommendation(rec(f"u{k}", 100.0 + k), received_at=100.5 + k)
        for j in range(3):
            assert board.add_event({"user_id": f"u{k}", "item_id": f"i{j}"},
                                   received_at=100.0 + k)
    assert list(board.lists) == ["u2", "u3", "u4"] and len(board.events) == 3
    assert [e["item_id"] for e in board.events["u4"]] == ["i1", "i2"]
    stats = board.stats(now=105.0)
    assert stats["lists_per_s"] == 0.5 and stats["events_per_s"] == 1.5
    assert stats["freshness_p50_ms"] == 500.0
    assert board.stats(now=200.0)["lists_per_s"] == 0.0  # the window forgets
    assert board.newest_user() == "u4" and board.recent_users(2) == ["u4", "u3"]
    for bad in (None, {"user_id": 1}, {"user_id": "x", "items": "no"},
                {"user_id": "x", "items": [], "source_event_time": "soon"}):
        assert not board.add_recommendation(bad)
    assert not board.add_event({"item_id": "a"})
    assert board.skipped_total == 5 and board.lists_total == 5


def test_listeners_hear_every_accepted_record() -> None:
    """Catches the SSE feed missing lists or events (listener not called) or hearing bad ones."""
    board = LiveBoard()
    heard: list[tuple[str, str]] = []
    board.listeners.append(lambda kind, user, payload: heard.append((kind, user)))
    board.add_recommendation(rec("ana", 1.0), received_at=2.0)
    board.add_event({"user_id": "ana", "item_id": "b"}, received_at=2.0)
    board.add_recommendation({"user_id": "bob"})
    assert heard == [("rec", "ana"), ("event", "ana")]
