"""Why an item is recommended, as a code with parameters, rendered through message catalogs.

A surface says *why* with a ``Reason(code, params)``; the words come from ``MESSAGES`` in the
shopper's language (English and Italian ship; English is the fallback), so a kiosk in Milan and
an app in London explain the same recommendation each in their own words. Parameters that are
words themselves (an action, a time ago, a part of the day) are codes too, translated here.

Example:
    >>> why = Reason("because_you", (("action", "scanned"), ("item", "Whole milk")))
    >>> why.text("en"), why.text("it")
    ('because you scanned Whole milk', 'perché hai scansionato Whole milk')
    >>> Reason("bought_ago", (("when", "days:3"),)).text("it")
    'hai comprato questo prodotto 3 giorni fa'
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from ..clock import DAY_MS

LANGUAGES = ("en", "it")
DEFAULT_LANGUAGE = "en"

MESSAGES: Mapping[str, Mapping[str, str]] = {
    "en": {
        "welcome_back": "welcome back: you used to buy this",
        "because_you": "because you {action} {item}",
        "similar_to": "similar to {item}",
        "like_from_category": "like {item}, from {category}",
        "like_from_elsewhere": "like {item}, from another aisle",
        "goes_with_like": "goes with items like {item}",
        "picked_after_like": "often picked after items like {item}",
        "also_pick": "shoppers who look at {item} also pick this",
        "bought_with": "often bought with {item}",
        "goes_with_cart": "goes with the {item} in your cart",
        "bought_ago": "you bought this {when}",
        "buy_again_cycle": "you bought this {when}; you usually buy it every {days} days",
        "seen_ago": "you {action} this {when}",
        "trending_store": "trending in this store this week",
        "trending_fleet": "trending in stores near you",
        "popular_daypart": "popular in this store in the {daypart}",
        "best_seller_in": "a best seller in {category}",
        "best_seller": "a best seller here",
        "cheaper_alternative": "similar to {item}, {saving} cheaper",
        "similar_alternative": "similar to {item}",
        "sold_out_alternative": "{item} is sold out: similar",
    },
    "it": {
        "welcome_back": "bentornato: lo compravi spesso",
        "because_you": "perché {action} {item}",
        "similar_to": "simile a {item}",
        "like_from_category": "come {item}, dal reparto {category}",
        "like_from_elsewhere": "come {item}, da un altro reparto",
        "goes_with_like": "si abbina a prodotti come {item}",
        "picked_after_like": "spesso scelto dopo prodotti come {item}",
        "also_pick": "chi guarda {item} sceglie anche questo",
        "bought_with": "spesso comprato con {item}",
        "goes_with_cart": "si abbina a {item} nel tuo carrello",
        "bought_ago": "hai comprato questo prodotto {when}",
        "buy_again_cycle": "hai comprato questo prodotto {when}; di solito lo compri ogni {days} giorni",
        "seen_ago": "{action} questo prodotto {when}",
        "trending_store": "di tendenza in questo negozio questa settimana",
        "trending_fleet": "di tendenza nei negozi vicini",
        "popular_daypart": "popolare in questo negozio di {daypart}",
        "best_seller_in": "tra i più venduti in {category}",
        "best_seller": "tra i più venduti qui",
        "cheaper_alternative": "simile a {item}, costa {saving} in meno",
        "similar_alternative": "simile a {item}",
        "sold_out_alternative": "{item} è esaurito: un prodotto simile",
    },
}
# Parameters that are words: the code stays in the data, each language says it its own way.
ACTIONS = {
    "en": {"viewed": "viewed", "scanned": "scanned", "added": "added", "bought": "bought"},
    "it": {
        "viewed": "hai guardato",
        "scanned": "hai scansionato",
        "added": "hai aggiunto",
        "bought": "hai comprato",
    },
}
DAYPARTS = {
    "en": {"morning": "morning", "afternoon": "afternoon", "evening": "evening", "night": "night"},
    "it": {"morning": "mattina", "afternoon": "pomeriggio", "evening": "sera", "night": "notte"},
}
WHEN = {
    "en": {
        "today": "today",
        "yesterday": "yesterday",
        "days": "{n} days ago",
        "weeks": "{n} weeks ago",
    },
    "it": {
        "today": "oggi",
        "yesterday": "ieri",
        "days": "{n} giorni fa",
        "weeks": "{n} settimane fa",
    },
}


@dataclass(frozen=True)
class Reason:
    """A reason code and its parameters (plain strings and numbers: they travel as data)."""

    code: str
    params: tuple[tuple[str, str | int], ...] = ()

    def text(self, language: str = DEFAULT_LANGUAGE) -> str:
        """The reason in ``language`` (English when the language or the code is not known)."""
        return _render(self.code, self.params, language if language in MESSAGES else "")

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "params": dict(self.params)}


def reason(code: str, **params: str | int) -> Reason:
    """A ``Reason`` from keyword parameters (kept in a stable order)."""
    return Reason(code, tuple(sorted(params.items())))


def when_code(now_ms: int, ts_ms: int) -> str:
    """How long ago, as a code: ``today``, ``yesterday``, ``days:N`` or ``weeks:N``.

    Example:
        >>> when_code(10 * DAY_MS, 7 * DAY_MS), when_code(100 * DAY_MS, 0)
        ('days:3', 'weeks:14')
    """
    days = max(0, (now_ms - ts_ms) // DAY_MS)
    if days == 0:
        return "today"
    if days == 1:
        return "yesterday"
    return f"days:{days}" if days < 14 else f"weeks:{days // 7}"


def best_language(accept_language: str | None) -> str:
    """The first shipped language a browser's ``Accept-Language`` asks for (else English).

    Example:
        >>> best_language("it-IT,it;q=0.9,en;q=0.8"), best_language("fr-FR"), best_language(None)
        ('it', 'en', 'en')
    """
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in MESSAGES:
            return tag
    return DEFAULT_LANGUAGE


@functools.lru_cache(maxsize=4096)
def _render(code: str, params: tuple[tuple[str, str | int], ...], language: str) -> str:
    """A reason's words (memoised: the catalogs are constants, and a page repeats reasons)."""
    lang = language or DEFAULT_LANGUAGE
    template = MESSAGES[lang].get(code) or MESSAGES[DEFAULT_LANGUAGE].get(code)
    if template is None:
        return code
    return template.format(**{k: _word(k, v, lang) for k, v in params})


def _word(key: str, value: str | int, lang: str) -> str:
    if key == "action":
        return ACTIONS[lang].get(str(value), str(value))
    if key == "daypart":
        return DAYPARTS[lang].get(str(value), str(value))
    if key == "when":
        kind, _, n = str(value).partition(":")
        return WHEN[lang].get(kind, str(value)).format(n=n)
    return str(value)
