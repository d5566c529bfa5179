"""Text from outside: what free human text may hold, and how a number written as text is read.

Free text is what people type and other people read: an applicant's or a material's name, a
reason, a comment, a requester, a certificate's face, a matter's name. It arrives through
the REST API, in peers' messages and in the province platforms' feeds, and goes on to other
platforms, logs, terminals and screens in other provinces. Rules kept:

1. ``clean_text`` is the one judge of free text, wherever it arrives. It returns the text in
   Unicode normal form C, or raises ``TextError`` (code ``invalid_text``) naming the field,
   the kind of character and its position, never the text (it may be a name).
2. Refused, because they are invisible or change how the text around them is shown, read or
   stored:
   - controls (category Cc): NUL, BEL, ESC, DEL, the C1 controls, and tab and line breaks
     too: every text here is one line in a form, a table or an XML element, and a line
     break in it is how a forged log line or table row starts;
   - format characters (Cf): bidirectional embeddings, overrides and isolates
     (U+202A-202E, U+2066-2069) that make a name read backwards, the marks U+200E, U+200F
     and U+061C, zero-width space and joiners (U+200B-200D), the word joiner and invisible
     operators (U+2060-2064), the byte-order mark U+FEFF, the soft hyphen, interlinear
     annotation and tag characters;
   - line and paragraph separators (Zl, Zp): line breaks by another name;
   - surrogates (Cs): a lone one (JSON ``"\\ud800"``) is no character and cannot be
     written as UTF-8, so it would fail wherever the text is stored or sent;
   - noncharacters (U+FDD0-FDEF and the last two code points of every plane).
   Kept: everything else, among it the ideographic space U+3000, variation selectors (a
   name's character may need its ideographic variation sequence), private-use characters
   (some provincial systems still write rare name characters 生僻字 there) and code points
   this Python's Unicode tables do not know yet (a newer CJK extension).
3. Text is normalised before its length is judged, so ``max_length`` bounds what is kept.
   Where the text was signed by someone else (a peer's message) it cannot be changed, so
   ``normalise=False`` refuses text that is not already in normal form C instead.
4. ``ascii_integer`` reads a whole number from ASCII digits only. ``str.isdigit`` also takes
   ``²`` (which ``int`` then refuses) and ``int`` also takes ``١`` (Arabic-Indic one): a
   query parameter or a dialect's number is either plain digits or no number.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from typing import Final

INVALID_TEXT: Final = "invalid_text"
"""The stable code of every refusal ``clean_text`` makes."""
MAX_DIGITS: Final = 18
"""Most digits ``ascii_integer`` reads: any 18-digit number fits in a signed 64-bit integer."""

_REFUSED_CATEGORIES: Final = {
    "Cc": "a control character",
    "Cf": "an invisible format character",
    "Cs": "a lone surrogate",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
# Planes 0 and 1 and the first block of plane 14 hold every Cc, Cf, Cs, Zl and Zp character
# Unicode has assigned (planes 2 and 3 are ideographs, 15 and 16 private use, the rest
# unassigned); scanning only them keeps the import quick.
_SCANNED: Final = (range(0x20000), range(0xE0000, 0xE1000))
_DIGITS: Final = frozenset("0123456789")


class TextError(ValueError):
    """Free text was refused (rule 1); ``str(error)`` names the field, never the text."""

    code: Final = INVALID_TEXT

    def __init__(self, field: str, sentence: str) -> None:
        self.field = field
        self.sentence = sentence
        """What is wrong, without the field's name (for callers that name it their way)."""
        self.detail = f"{field}: {sentence}"
        super().__init__(self.detail)


def _refused_characters() -> re.Pattern[str]:
    """One character class of everything rule 2 refuses, built from Unicode's tables."""
    points = [
        point
        for block in _SCANNED
        for point in block
        if unicodedata.category(chr(point)) in _REFUSED_CATEGORIES
    ]
    points += range(0xFDD0, 0xFDF0)
    points += (
        plane + end for plane in range(0, sys.maxunicode + 1, 0x10000) for end in (0xFFFE, 0xFFFF)
    )
    ranges: list[tuple[int, int]] = []
    for point in sorted(set(points)):
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1] = (ranges[-1][0], point)
        else:
            ranges.append((point, point))
    return re.compile("[" + "".join(f"\\U{low:08x}-\\U{high:08x}" for low, high in ranges) + "]")


_REFUSED: Final = _refused_characters()


def _kind(char: str) -> str:
    return _REFUSED_CATEGORIES.get(unicodedata.category(char), "a noncharacter")


def clean_text(
    value: str, *, field: str, max_length: int | None = None, normalise: bool = True
) -> str:
    """``value`` in Unicode normal form C, or ``TextError`` naming ``field`` (rules 1 to 3).

    With ``normalise=False`` text that is not already in normal form C is refused, not
    changed: the caller holds it as someone else signed it.
    """
    found = _REFUSED.search(value)
    if found is not None:
        char = found.group()
        raise TextError(
            field,
            f"holds {_kind(char)} (U+{ord(char):04X}) at character {found.start() + 1}; "
            "text may not hold control, format or invisible characters",
        )
    if unicodedata.is_normalized("NFC", value):
        text = value
    elif normalise:
        text = unicodedata.normalize("NFC", value)
    else:
        raise TextError(field, "is not in Unicode normal form C (NFC)")
    if max_length is not None and len(text) > max_length:
        raise TextError(
            field, f"has {len(text)} characters once normalised; at most {max_length} are allowed"
        )
    return text


def ascii_integer(text: str, *, low: int = 0, high: int = 10**MAX_DIGITS - 1) -> int | None:
    """The whole number ``text`` writes in ASCII digits, if it lies in ``low``..``high``;
    None for anything else (rule 4): the caller refuses it in its own words."""
    if not 1 <= len(text) <= MAX_DIGITS or not _DIGITS.issuperset(text):
        return None
    value = int(text)
    return value if low <= value <= high else None
