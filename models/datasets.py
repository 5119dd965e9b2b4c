"""Loaders for the offline-evaluation data (paper 000 §4.1.1) and the one record type they yield.

Every loader returns ``list[Interaction]`` sorted by time (ties keep file order), so splits,
baselines and the decayed score matrix (Eq. 1–3) all read the same records:

- ``taobao/user_behavior.csv`` (Tianchi UserBehavior head): ``pv/fav/cart/buy`` become
  ``view/favorite/cart/purchase``. ``level="category"`` uses ``category_id`` as the item — the
  primary Taobao level, since 55k items are mostly seen once and item-level full ranking scores
  near zero; ``level="item"`` keeps ``item_id``.
- ``hm/transactions.csv`` (H&M sample): every row is a purchase; ``t_dat`` (a date) becomes epoch
  seconds at 00:00 UTC; article ids stay zero-padded 10-digit strings, matching
  ``hm/images/<article_id>.jpg``.

Cleaning follows §4.1.1 ("duplicate, incomplete, and abnormal records are first removed"), read
as: exact duplicate rows are dropped (``dedupe=True``), rows with a missing field or an unknown
behaviour raise :class:`DatasetError` naming file and line, and Taobao events outside the
data's documented window (2017-11-25 to 2017-12-02, UTC+8; 7 stray 2017-09 timestamps) are
dropped as abnormal.

``max_users`` keeps the first N users in sorted id order (deterministic CI-sized runs, every kept
user with the complete history).
"""

from __future__ import annotations

import csv
import gzip
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import TextIO

import numpy as np

from models.behaviors import BEHAVIORS

TAOBAO_BEHAVIORS: dict[str, str] = {"pv": "view", "fav": "favorite", "cart": "cart",
                                    "buy": "purchase"}
_CST = timezone(timedelta(hours=8))
#: Documented window of the Taobao head (README): 2017-11-25 00:00 to 2017-12-03 00:00, UTC+8.
TAOBAO_WINDOW: tuple[float, float] = (
    datetime(2017, 11, 25, tzinfo=_CST).timestamp(),
    datetime(2017, 12, 3, tzinfo=_CST).timestamp(),
)
DATASETS: tuple[str, ...] = ("taobao", "hm")
TAOBAO_COLUMNS: tuple[str, ...] = ("user_id", "item_id", "category_id", "behavior", "timestamp")
HM_COLUMNS: tuple[str, ...] = ("t_dat", "customer_id", "article_id", "price", "sales_channel_id")


class DatasetError(ValueError):
    """The data directory or a data file is missing or malformed; the message says which."""


@dataclass(frozen=True, slots=True)
class Interaction:
    """One behaviour event: ``user`` did ``behavior`` on ``item`` at ``t`` (epoch seconds)."""

    user: str
    item: str
    behavior: str
    t: float


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``explicit`` (a ``--data`` option), else ``$STYLESTREAM_DATA``; must
    exist. The one place that variable is read: every command and loader resolves through it.
    """
    raw = explicit if explicit else os.environ.get("STYLESTREAM_DATA")
    if not raw:
        raise DatasetError("no data directory: pass --data DIR or set STYLESTREAM_DATA to the "
                           "shared data folder (the one holding taobao/, hm/, fashion_products/)")
    root = Path(raw)
    if not root.is_dir():
        raise DatasetError(f"data directory {root} does not exist (STYLESTREAM_DATA)")
    return root


def _open_text(path: Path) -> TextIO:
    """``path`` as text: gzip-compressed files (by their magic bytes) are read through gzip; a
    UTF-8 byte-order mark is dropped; CRLF and LF line ends are both read."""
    with path.open("rb") as raw:
        magic = raw.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _rows(path: Path, columns: Sequence[str], fieldnames: Sequence[str] | None = None,
          skipped: Counter[str] | None = None) -> Iterable[tuple[int, dict[str, str]]]:
    """Rows by column name. The header row names the columns (any order, case and spaces
    ignored) unless ``fieldnames`` are given (a header-less file). A row with an empty field
    raises, or is counted in ``skipped`` when that is given; blank lines are skipped."""
    if not path.is_file():
        raise DatasetError(f"data file {path} is missing")
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle)
            names = list(fieldnames) if fieldnames else [
                c.strip().lower() for c in next(reader, [])]
            missing = [c for c in columns if c not in names]
            if missing:
                raise DatasetError(f"{path}: header lacks column(s) {missing}")
            for line, values in enumerate(reader, start=1 if fieldnames else 2):
                if not values or values == [""]:
                    continue
                row = dict(zip(names, (v.strip() for v in values), strict=False))
                if any(not row.get(c) for c in columns):
                    if skipped is None:
                        raise DatasetError(f"{path}:{line}: empty field in {row}")
                    skipped["empty field"] += 1
                    continue
                yield line, row
    except (UnicodeDecodeError, EOFError, OSError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot be read as a UTF-8 CSV (or gzip of one): "
                           f"{exc}") from exc


def _keep_users(events: list[Interaction], max_users: int | None) -> list[Interaction]:
    if max_users is None:
        return events
    if max_users < 1:
        raise DatasetError(f"max_users must be >= 1, got {max_users}")
    kept = set(sorted({e.user for e in events}, key=_user_key)[:max_users])
    return [e for e in events if e.user in kept]


def _user_key(user: str) -> tuple[int, int | str]:
    """Numeric ids sort numerically (Taobao), others as strings (H&M hashes)."""
    return (0, int(user)) if user.isdigit() else (1, user)


def _finish(events: list[Interaction], dedupe: bool) -> list[Interaction]:
    if dedupe:
        events = list(dict.fromkeys(events))
    events.sort(key=lambda e: e.t)  # stable: ties keep file order
    return events


def load_taobao(root: str | os.PathLike[str] | None = None, *, level: str = "category",
                max_users: int | None = None, dedupe: bool = True) -> list[Interaction]:
    """``taobao/user_behavior.csv`` as interactions; ``level`` is ``"category"`` or ``"item"``."""
    path = data_dir(root) / "taobao" / "user_behavior.csv"
    return read_taobao_csv(path, level=level, max_users=max_users, dedupe=dedupe,
                           window=TAOBAO_WINDOW)


def read_taobao_csv(path: str | os.PathLike[str], *, level: str = "category",
                    max_users: int | None = None, dedupe: bool = True,
                    window: tuple[float, float] | None = None, header: bool = True,
                    skipped: Counter[str] | None = None) -> list[Interaction]:
    """A log in the Taobao UserBehavior layout (``user_id,item_id,category_id,behavior,
    timestamp``) as interactions; events outside ``window`` (epoch seconds) are left out.
    ``header=False``: the file has no header row (the columns in that order, as Tianchi ships
    UserBehavior.csv). ``skipped``: count unreadable rows there (by reason) instead of
    raising."""
    if level not in ("category", "item"):
        raise DatasetError(f"taobao level must be 'category' or 'item', got {level!r}")
    path = Path(path)
    column = "category_id" if level == "category" else "item_id"
    lo, hi = window or (-math.inf, math.inf)
    events: list[Interaction] = []
    for line, row in _rows(path, TAOBAO_COLUMNS, None if header else TAOBAO_COLUMNS, skipped):
        behavior = TAOBAO_BEHAVIORS.get(row["behavior"])
        if behavior is None:
            if skipped is not None:
                skipped[f"unknown behaviour {row['behavior'][:20]!r}"] += 1
                continue
            raise DatasetError(f"{path}:{line}: unknown behaviour {row['behavior']!r} "
                               f"(expected one of {sorted(TAOBAO_BEHAVIORS)})")
        try:
            t = float(row["timestamp"])
            if not math.isfinite(t):
                raise ValueError(t)
        except ValueError as exc:
            if skipped is not None:
                skipped["bad timestamp"] += 1
                continue
            raise DatasetError(f"{path}:{line}: timestamp {row['timestamp']!r}") from exc
        if lo <= t < hi:
            events.append(Interaction(row["user_id"], row[column], behavior, t))
    return _finish(_keep_users(events, max_users), dedupe)


def load_hm(root: str | os.PathLike[str] | None = None, *, max_users: int | None = None,
            dedupe: bool = True) -> list[Interaction]:
    """``hm/transactions.csv`` as purchases at 00:00 UTC of ``t_dat``."""
    return read_hm_csv(data_dir(root) / "hm" / "transactions.csv", max_users=max_users,
                       dedupe=dedupe)


def read_hm_csv(path: str | os.PathLike[str], *, max_users: int | None = None,
                dedupe: bool = True, header: bool = True,
                skipped: Counter[str] | None = None) -> list[Interaction]:
    """A log in the H&M transactions layout (``t_dat,customer_id,article_id,…``) as purchases
    at 00:00 UTC of ``t_dat``. ``header`` and ``skipped`` as in :func:`read_taobao_csv`."""
    path = Path(path)
    events: list[Interaction] = []
    for line, row in _rows(path, HM_COLUMNS[:3], None if header else HM_COLUMNS, skipped):
        try:
            day = date.fromisoformat(row["t_dat"][:10])
        except ValueError as exc:
            if skipped is not None:
                skipped["t_dat is not a date"] += 1
                continue
            raise DatasetError(f"{path}:{line}: t_dat {row['t_dat']!r} is not a date") from exc
        article = row["article_id"]
        if not article.isdigit() or len(article) > 10:
            if skipped is not None:
                skipped["article_id is not a 10-digit id"] += 1
                continue
            raise DatasetError(f"{path}:{line}: article_id {article!r} is not a 10-digit id")
        t = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        events.append(Interaction(row["customer_id"], article.zfill(10), "purchase", t))
    return _finish(_keep_users(events, max_users), dedupe)


def read_events_csv(path: str | os.PathLike[str], *, level: str = "category",
                    skipped: Counter[str] | None = None) -> tuple[str, list[Interaction]]:
    """A log in either layout, told apart by its first row: ``("taobao" | "hm", events)``.

    A header names the columns in any order (case and spaces ignored); a file without one
    must hold the columns in the layout's order (Taobao: ``user_id,item_id,category_id,
    behavior,timestamp`` with a number last, as Tianchi ships it; H&M:
    ``t_dat,customer_id,article_id,price,sales_channel_id`` with a date first). gzip files are
    read as such. ``skipped``: count unreadable rows there instead of raising."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    try:
        with _open_text(path) as handle:
            first = next(csv.reader(handle), [])
    except (UnicodeDecodeError, EOFError, OSError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot be read as a UTF-8 CSV (or gzip of one): "
                           f"{exc}") from exc
    names = {c.strip().lower() for c in first}
    if set(TAOBAO_COLUMNS) <= names:
        return "taobao", read_taobao_csv(path, level=level, skipped=skipped)
    if set(HM_COLUMNS[:3]) <= names:
        return "hm", read_hm_csv(path, skipped=skipped)
    values = [c.strip() for c in first]
    if len(values) == len(TAOBAO_COLUMNS) and _is_number(values[4]):
        return "taobao", read_taobao_csv(path, level=level, header=False, skipped=skipped)
    if len(values) == len(HM_COLUMNS) and _is_date(values[0]):
        return "hm", read_hm_csv(path, header=False, skipped=skipped)
    shown = ",".join(values)[:80]
    raise DatasetError(f"{path}: first row {shown!r} is neither a header of the Taobao layout "
                       "(user_id,item_id,category_id,behavior,timestamp) or the H&M one "
                       "(t_dat,customer_id,article_id,...) nor a header-less row of either")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text[:10])
    except ValueError:
        return False
    return True


def load(name: str, root: str | os.PathLike[str] | None = None, *, level: str = "category",
         max_users: int | None = None) -> list[Interaction]:
    """Dispatch by dataset name (``taobao`` or ``hm``); ``level`` only applies to Taobao."""
    if name == "taobao":
        return load_taobao(root, level=level, max_users=max_users)
    if name == "hm":
        return load_hm(root, max_users=max_users)
    raise DatasetError(f"unknown dataset {name!r}; expected one of {list(DATASETS)}")


def hm_image_path(root: str | os.PathLike[str] | None, article_id: str) -> Path:
    """Where an H&M article's image lives (it may not exist: 4,116 articles have one)."""
    return data_dir(root) / "hm" / "images" / f"{article_id}.jpg"


@dataclass(frozen=True)
class Vocabulary:
    """Dense integer ids for users and items, in first-seen order of the given interactions."""

    users: tuple[str, ...]
    items: tuple[str, ...]

    @classmethod
    def build(cls, interactions: Iterable[Interaction]) -> Vocabulary:
        users: dict[str, None] = {}
        items: dict[str, None] = {}
        for e in interactions:
            users.setdefault(e.user)
            items.setdefault(e.item)
        return cls(tuple(users), tuple(items))

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def user_index(self) -> dict[str, int]:
        return {u: k for k, u in enumerate(self.users)}

    def item_index(self) -> dict[str, int]:
        return {i: k for k, i in enumerate(self.items)}


@dataclass(frozen=True)
class InteractionArrays:
    """Columnar, integer-coded interactions: what the models train on (vectorised numpy)."""

    users: np.ndarray      # int64 user index
    items: np.ndarray      # int64 item index
    behaviors: np.ndarray  # int8 index into BEHAVIORS
    t: np.ndarray          # float64 epoch seconds

    @classmethod
    def encode(cls, interactions: Sequence[Interaction], vocab: Vocabulary) -> InteractionArrays:
        """Code ``interactions`` with ``vocab``; users or items outside it raise DatasetError."""
        uix, iix = vocab.user_index(), vocab.item_index()
        bix = {b: k for k, b in enumerate(BEHAVIORS)}
        try:
            users = np.fromiter((uix[e.user] for e in interactions), np.int64, len(interactions))
            items = np.fromiter((iix[e.item] for e in interactions), np.int64, len(interactions))
            behaviors = np.fromiter((bix[e.behavior] for e in interactions), np.int8,
                                    len(interactions))
        except KeyError as exc:
            raise DatasetError(f"{exc.args[0]!r} is not in the vocabulary") from exc
        t = np.fromiter((e.t for e in interactions), np.float64, len(interactions))
        return cls(users, items, behaviors, t)

    def __len__(self) -> int:
        return int(self.users.shape[0])


def taobao_item_categories(root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """``item_id → category_id`` of the Taobao log (an item's content side-information)."""
    path = data_dir(root) / "taobao" / "user_behavior.csv"
    return {row["item_id"]: row["category_id"]
            for _, row in _rows(path, ("item_id", "category_id"))}
