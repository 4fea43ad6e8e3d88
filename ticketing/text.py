"""The one rule for free text from outside (ticket content and title, names, replies, reasons,
comments, search terms): what is kept, what is dropped, and so what counts as empty.

Dropped: control characters other than tab, newline and carriage return (C0, DEL, C1; a NUL also
breaks SQLite's FTS5 and PostgreSQL's text), and invisible format characters (zero-width spaces
and joiners, the BOM, soft hyphen, direction marks and embeddings). Then surrounding whitespace
(Unicode's, the ideographic space included) is stripped. Text that is empty after this is empty:
callers validate the normalised value, never the raw one.
"""

from __future__ import annotations

import re

_DROPPED = re.compile(
    "["
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # control characters but \t \n \r
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e"  # soft hyphen, invisible fillers
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"  # zero-width, bidi, invisible ops
    "\u3164\ufeff\uffa0"  # Hangul fillers, BOM / zero-width no-break space
    "]"
)


def normalise_text(value: str | None) -> str:
    """`value` with dropped characters removed and surrounding whitespace stripped ('' for None)."""
    if not value:
        return ""
    return _DROPPED.sub("", value).strip()


def is_digits(value: str) -> bool:
    """ASCII digits only, at least one. str.isdigit() also says yes to "²" (int() then raises: a
    500) and to full-width "１２" or other scripts' digits, in which no year, version or extension
    is written."""
    return value.isascii() and value.isdigit()


def has_dropped(value: str | None) -> bool:
    """True when `value` contains a character normalise_text drops."""
    return value is not None and _DROPPED.search(value) is not None


_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def bigrams(value: str | None) -> frozenset[str]:
    """The character pairs of `value` with punctuation and spaces removed (Chinese has no spaces:
    pairs of characters stand in for words)."""
    t = _NOT_WORD.sub("", normalise_text(value).casefold())
    if len(t) < 2:
        return frozenset({t} if t else ())
    return frozenset(t[i : i + 2] for i in range(len(t) - 1))


def similarity(a: str | None, b: str | None) -> float:
    """Dice coefficient of the two texts' character pairs: 1.0 the same words, 0.0 none shared."""
    return dice(bigrams(a), bigrams(b))


def dice(x: frozenset[str], y: frozenset[str]) -> float:
    """Dice coefficient of two sets of character pairs (see bigrams)."""
    if not x or not y:
        return 0.0
    return 2 * len(x & y) / (len(x) + len(y))
