"""Gender compatibility (paper 002 §4.2: "candidates are filtered by gender compatibility").

Genders of the catalogs: Men, Women, Unisex (all), Boys, Girls (fashion_products). Our reading:
an item fits a shopper when the item is Unisex (or has no gender), when the shopper's gender is
unknown or Unisex, or when the item's gender *family* equals the shopper's: Boys belong to the
Men family and Girls to the Women family (a parent shopping for a child is the usual case), so a
Men shopper may get Boys items and vice versa, but never Women/Girls ones. The simulator's
shoppers (:mod:`models.simulation`) and the rule stage (:mod:`serving.rule_scorer`) share it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

_FAMILY = {"men": "Men", "man": "Men", "male": "Men", "boys": "Men", "boy": "Men",
           "women": "Women", "woman": "Women", "female": "Women", "ladies": "Women",
           "girls": "Women", "girl": "Women", "unisex": "Unisex", "": "Unisex"}


def gender_family(gender: str | None) -> str:
    """Men / Women / Unisex family of a gender label (unknown labels → Unisex)."""
    return _FAMILY.get((gender or "").strip().lower(), "Unisex")


def gender_compatible(shopper_gender: str | None, item_gender: str | None) -> bool:
    """Whether an item of ``item_gender`` may be shown to a shopper of ``shopper_gender``."""
    shopper, item = gender_family(shopper_gender), gender_family(item_gender)
    return shopper == "Unisex" or item == "Unisex" or shopper == item


def infer_gender(item_genders: Iterable[str | None]) -> str | None:
    """A shopper's gender from the items they engaged with: the majority non-Unisex family
    (paper 002 §3.3: the first item "initiates the user's gender preference"); ``None`` when
    every item is Unisex or there is no history, or on a tie."""
    counts = Counter(f for f in map(gender_family, item_genders) if f != "Unisex")
    if not counts:
        return None
    (top, n), *rest = counts.most_common()
    if rest and rest[0][1] == n:
        return None
    return top
