"""Hostile input, property-based: the event contract and catalog updates refuse anything bad with
a reason (never another exception, never a hang), and whatever they accept obeys the contract.
Image paths of catalog items cannot leave the catalog directory."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.catalog import (
    CatalogItem,
    UnsafeImagePath,
    image_roots,
    resolve_image,
    save_catalog,
)
from models.catalog_import import import_catalog
from models.feature_store import item_image
from serving.catalog_updates import CatalogRecordError, parse_catalog_update, read_updates
from streams.config import BEHAVIORS, ConfigError, InputLimits, load_settings
from streams.contract import InvalidEvent, dead_letter_record, parse_event

NOW = 1_800_000_000.0
LIMITS = InputLimits()
EVENT_FIELDS = ("event_id", "user_id", "item_id", "behavior", "timestamp", "session_id",
                "store_id", "lat", "lon")
#: Every reason the contract may give (``unreadable``, the safety net, must never show up).
REASONS = {"empty", "too_large", "not_utf8", "not_json", "not_an_object", "unknown_behavior",
           "missing_behavior", "future_timestamp", "bad_location",
           *(f"{p}_{f}" for p in ("missing", "bad") for f in EVENT_FIELDS)}

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "a\nb", "\x1e\x1f", "\ud800", "\u202e", "\x7f", "click",
                     "view", "purchase", "x" * 300, "9" * 5000, "NaN", "-inf", "1e400",
                     "2026-11-01T10:00:00", "2026-11-01T10:00:00+01:00", "0001-01-01T00:00+14:00",
                     "9999-12-31T23:59:59-14:00", "../../etc/passwd", "/etc/passwd"]))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([10**400, -(10**400), 2**63, -1, 0]),
    st.floats(allow_nan=True, allow_infinity=True), hostile_text)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4),
                                                                          inner, max_size=3),
    max_leaves=8)


def valid_event(**overrides: object) -> dict:
    base = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "behavior": "cart",
            "timestamp": NOW - 3600}
    base.update(overrides)
    return base


def check_event(raw: bytes, limits: InputLimits = LIMITS) -> None:
    """The property: a contract-abiding event, or InvalidEvent with a known reason and a
    detail, and a dead letter that is small, JSON and keeps the reason."""
    try:
        event = parse_event(raw, now=NOW, limits=limits)
    except InvalidEvent as error:
        assert error.reason in REASONS, error
        assert error.detail
        letter = dead_letter_record(raw, error, "behavior-events", 0, 1,
                                    keep_bytes=limits.max_message_bytes)
        assert json.loads(letter)["reason"] == error.reason
        assert len(letter) < 4 * limits.max_message_bytes + 1024
        return
    for name in ("event_id", "user_id", "item_id", "session_id", "store_id"):
        value = getattr(event, name)
        if value is None and name in ("session_id", "store_id"):
            continue
        assert value and value.isprintable() and len(value) <= limits.max_id_length
        assert value == value.strip()
    assert event.behavior in BEHAVIORS
    assert math.isfinite(event.timestamp)
    assert limits.min_timestamp <= event.timestamp <= NOW + limits.max_future_seconds
    if event.lat is not None:
        assert abs(event.lat) <= 90 and abs(event.lon) <= 180  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200))
def test_random_bytes_are_refused_with_a_reason(raw: bytes) -> None:
    """Random bytes: InvalidEvent with a known reason (or, by luck, a valid event). Catches any
    other exception escaping the parser, which would stop the ingest worker."""
    check_event(raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(EVENT_FIELDS), value=json_values)
def test_every_field_with_any_json_value(field: str, value: object) -> None:
    """Each field replaced by any JSON value (wrong types, NaN/±inf, huge and negative numbers,
    control characters, long or nested values): refused with its reason or accepted within the
    contract. Catches e.g. float(10**400) raising OverflowError or a NaN coordinate passing."""
    check_event(json.dumps(valid_event(**{field: value})).encode())


@settings(max_examples=200, deadline=None)
@given(timestamp=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                           st.floats(-1e12, 1e13)))
def test_timestamps_outside_the_accepted_range_are_refused(timestamp: float) -> None:
    """NaN, ±inf, negative, before 2000, far future: refused as bad_/future_timestamp; inside
    the range: accepted unchanged. Catches a range check that lets any of them through."""
    raw = json.dumps(valid_event(timestamp=timestamp)).encode()
    inside = (isinstance(timestamp, int | float) and math.isfinite(timestamp)
              and LIMITS.min_timestamp <= timestamp <= NOW + LIMITS.max_future_seconds)
    if inside:
        assert parse_event(raw, now=NOW).timestamp == float(timestamp)
    else:
        with pytest.raises(InvalidEvent) as info:
            parse_event(raw, now=NOW)
        assert info.value.reason in ("bad_timestamp", "future_timestamp")


@pytest.mark.parametrize("depth", [50, 990, 5000, 100_000])
@pytest.mark.parametrize("field", ["behavior", "event_id", "timestamp", "lat"])
def test_deep_json_is_refused(depth: int, field: str) -> None:
    """Well-formed JSON nested up to 100,000 levels as a field's value: refused (not_json or
    bad_<field>), no RecursionError escaping."""
    nested = "[" * depth + '"x"' + "]" * depth
    raw = json.dumps(valid_event(**{field: "@"})).replace('"@"', nested)
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw.encode(), now=NOW)
    assert info.value.reason in REASONS


def test_ten_megabyte_values_and_huge_strings_are_refused() -> None:
    """A 10 MB value is refused as too_large before it is decoded, and its dead letter keeps
    only the first bytes (with size and digest) so it can be published; a long identifier is
    refused under the configured id length. Catches an unbounded parse or dead letter."""
    big = json.dumps(valid_event(item_id="x" * (10 * 1024 * 1024))).encode()
    with pytest.raises(InvalidEvent) as info:
        parse_event(big, now=NOW)
    assert info.value.reason == "too_large"
    letter = json.loads(dead_letter_record(big, info.value, "t", 0, 0))
    assert letter["original_truncated"] and letter["original_size"] == len(big)
    assert len(letter["original_b64"]) < 2 * LIMITS.max_message_bytes
    small = InputLimits(max_id_length=8, max_message_bytes=1024)
    with pytest.raises(InvalidEvent, match="longer than 8"):
        parse_event(json.dumps(valid_event(user_id="u" * 9)).encode(), now=NOW, limits=small)
    with pytest.raises(InvalidEvent) as info:
        parse_event(json.dumps(valid_event(item_id="i" * 2000)).encode(), now=NOW, limits=small)
    assert info.value.reason == "too_large"


def test_limits_are_settings_with_clear_errors() -> None:
    """Each limit is read from its STYLESTREAM_* variable; a bad value names the variable."""
    settings_ = load_settings({"STYLESTREAM_MAX_MESSAGE_BYTES": "2048",
                               "STYLESTREAM_MAX_ID_LENGTH": "64",
                               "STYLESTREAM_MIN_TIMESTAMP": "0",
                               "STYLESTREAM_MAX_FUTURE_SECONDS": "60",
                               "STYLESTREAM_DEDUPE_WINDOW_SECONDS": "3600",
                               "STYLESTREAM_DEDUPE_MAX_IDS": "10"})
    assert settings_.limits == InputLimits(max_message_bytes=2048, max_id_length=64,
                                           min_timestamp=0.0, max_future_seconds=60.0)
    assert (settings_.decay.dedupe_ttl_seconds, settings_.decay.dedupe_max_ids) == (3600, 10)
    assert load_settings({}).limits == InputLimits()
    with pytest.raises(ConfigError, match="STYLESTREAM_MAX_MESSAGE_BYTES"):
        load_settings({"STYLESTREAM_MAX_MESSAGE_BYTES": "12"})
    with pytest.raises(ConfigError, match="STYLESTREAM_MAX_ID_LENGTH"):
        load_settings({"STYLESTREAM_MAX_ID_LENGTH": "many"})
    with pytest.raises(ConfigError, match="STYLESTREAM_DEDUPE_WINDOW_SECONDS"):
        load_settings({"STYLESTREAM_DEDUPE_WINDOW_SECONDS": "5"})
    with pytest.raises(ConfigError, match="STYLESTREAM_DEDUPE_MAX_IDS"):
        load_settings({"STYLESTREAM_DEDUPE_MAX_IDS": "0"})


# --- catalog updates ---------------------------------------------------------------------------

CATALOG_FIELDS = ("item_id", "title", "category", "group", "gender", "colour", "description",
                  "image", "store_id", "price", "extra")


def catalog_record(**overrides: object) -> dict:
    base = {"item_id": "N-1", "title": "Red Dress", "category": "Dresses", "group": "Dresses",
            "price": 10.0, "image": "images/n1.jpg"}
    base.update(overrides)
    return base


def check_catalog(key: bytes | None, value: bytes) -> None:
    try:
        item = parse_catalog_update(key, value)
    except CatalogRecordError as error:
        assert str(error) and "could not be checked" not in str(error)
        assert len(str(error)) < 600  # hostile values are not echoed whole
        return
    for name in ("item_id", "title", "category", "group"):
        assert isinstance(getattr(item, name), str) and getattr(item, name).strip()
    assert item.item_id.isprintable() and len(item.item_id) <= LIMITS.max_id_length
    assert item.price is None or (math.isfinite(item.price) and item.price >= 0)
    assert all(isinstance(v, str) for v in item.extra.values())
    assert item.image is None or (item.image.isprintable() and ".." not in Path(item.image).parts)


@settings(max_examples=300, deadline=None)
@given(key=st.none() | st.binary(max_size=20), value=st.binary(max_size=200))
def test_catalog_random_bytes_are_refused(key: bytes | None, value: bytes) -> None:
    """Random record bytes and keys: CatalogRecordError with a reason, nothing else."""
    check_catalog(key, value)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(CATALOG_FIELDS), value=json_values)
def test_catalog_every_field_with_any_json_value(field: str, value: object) -> None:
    """Each catalog field replaced by any JSON value: refused with a bounded reason or accepted
    with the right types. Catches e.g. a 10**400 price raising OverflowError or a NaN price."""
    record = catalog_record(**{field: value})
    check_catalog(None, json.dumps(record).encode())


def test_catalog_huge_and_deep_records_are_refused() -> None:
    """10 MB records, 100,000-deep JSON and overlong or control-character ids are refused with
    their reason; read_updates counts them and keeps the valid record beside them."""
    huge = json.dumps(catalog_record(description="d" * (10 * 1024 * 1024))).encode()
    deep = b'{"item_id": ' + b"[" * 100_000 + b"}"
    cases = {huge: "more than", deep: "not JSON",
             json.dumps(catalog_record(item_id="x" * 300)).encode(): "longer than",
             json.dumps(catalog_record(item_id="a\x00b")).encode(): "control characters",
             json.dumps(catalog_record(price=10**400)).encode(): "price",
             json.dumps(catalog_record(image="../../etc/passwd")).encode(): "'..'"}
    for value, reason in cases.items():
        with pytest.raises(CatalogRecordError, match=reason):
            parse_catalog_update(None, value)
    good = json.dumps(catalog_record(item_id="OK")).encode()
    items = read_updates([(None, v) for v in cases] + [(b"OK", good)])
    assert [item.item_id for item in items] == ["OK"]


# --- image paths -------------------------------------------------------------------------------

def make_catalog(tmp_path: Path) -> tuple[Path, Path]:
    catalog = tmp_path / "catalog"
    (catalog / "images").mkdir(parents=True)
    (catalog / "images" / "in.jpg").write_bytes(b"inside")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key.jpg").write_bytes(b"secret")
    os.symlink(outside / "key.jpg", catalog / "images" / "out.jpg")
    os.symlink(outside, catalog / "images" / "outdir")
    return catalog, outside


def test_image_paths_cannot_escape_the_catalog(tmp_path: Path) -> None:
    """Absolute paths elsewhere, '..' and symbolic links that lead out are refused with a
    reason; paths inside (relative or absolute) resolve. Catches a catalog record that makes a
    worker read any file on the machine."""
    catalog, outside = make_catalog(tmp_path)
    assert resolve_image(catalog, "images/in.jpg") == (catalog / "images/in.jpg").resolve()
    assert resolve_image(catalog, str(catalog / "images/in.jpg")).is_file()
    refused = {"/etc/passwd": "absolute", str(outside / "key.jpg"): "absolute",
               "../secret/key.jpg": "'..'", "images/../../secret/key.jpg": "'..'",
               "images/out.jpg": "symbolic link", "images/outdir/key.jpg": "symbolic link",
               "C:\\Windows\\win.ini": "absolute", "images/\x00.jpg": "control"}
    for image, reason in refused.items():
        with pytest.raises(UnsafeImagePath, match=reason):
            resolve_image(catalog, image)
    # the catalog's declared image roots (an import's data directory) are the one exception
    assert resolve_image(catalog, str(outside / "key.jpg"), [outside]).is_file()


def test_catalog_updates_and_feature_reads_refuse_escaping_images(tmp_path: Path) -> None:
    """Through the worker's reader (with its catalog directory) and the feature extractor's
    image read: escaping paths are refused (record invalid / image treated as missing)."""
    catalog, outside = make_catalog(tmp_path)
    records = [(b"A", json.dumps(catalog_record(item_id="A", image="images/in.jpg")).encode()),
               (b"B", json.dumps(catalog_record(item_id="B", image="images/out.jpg")).encode()),
               (b"C", json.dumps(catalog_record(item_id="C",
                                                image=str(outside / "key.jpg"))).encode())]
    assert [item.item_id for item in read_updates(records, catalog_dir=catalog)] == ["A"]
    escaping = CatalogItem("B", "t", "c", "g", image="images/out.jpg")
    assert item_image(escaping, catalog) is None
    # save_catalog declares the folder of absolute (imported) image paths as an image root
    imported = CatalogItem("D", "t", "c", "g", image=str((outside / "key.jpg").resolve()))
    save_catalog(catalog, [imported])
    assert image_roots(catalog) == [outside.resolve()]
    assert resolve_image(catalog, imported.image, image_roots(catalog)).is_file()


def test_import_does_not_follow_image_links_out_of_the_data(tmp_path: Path) -> None:
    """A symbolic link in the data set's images folder that leads elsewhere is not taken as the
    item's picture (it would become a trusted image root)."""
    source = tmp_path / "fashion_products"
    (source / "images").mkdir(parents=True)
    (source / "styles.csv").write_text(
        "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,"
        "productDisplayName\n1,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Red Tee\n"
        "2,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Blue Tee\n", encoding="utf-8")
    (source / "images" / "1.jpg").write_bytes(b"jpg")
    (tmp_path / "elsewhere.jpg").write_bytes(b"secret")
    os.symlink(tmp_path / "elsewhere.jpg", source / "images" / "2.jpg")
    report = import_catalog("fashion_products", tmp_path)
    images = {item.item_id: item.image for item in report.items}
    assert images["1"] == str((source / "images" / "1.jpg").resolve()) and images["2"] is None


def test_every_checkpoint_load_is_weights_only() -> None:
    """Every torch.load in the code base passes weights_only=True (a pickled checkpoint could
    otherwise run code on load). Catches a new loader added without it."""
    repo = Path(__file__).resolve().parent.parent
    calls = []
    for path in repo.rglob("*.py"):
        if any(part.startswith(".") or part == "tests" for part in path.relative_to(repo).parts):
            continue
        text = path.read_text(encoding="utf-8")
        start = text.find("torch.load(")
        while start != -1:
            end = text.find(")", start)
            calls.append((path.name, text[start:end + 1]))
            start = text.find("torch.load(", end)
    assert calls, "no torch.load found: the scan is broken"
    unsafe = [(name, call) for name, call in calls if "weights_only=True" not in call]
    assert not unsafe
