"""The one judge of free text and of numbers written as text (``node.text``), sans I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.text import INVALID_TEXT, TextError, ascii_integer, clean_text

HOSTILE: dict[str, str] = {
    "NUL": "\x00",
    "BEL": "\x07",
    "ESC": "\x1b",
    "tab": "\t",
    "line feed": "\n",
    "carriage return": "\r",
    "DEL": "\x7f",
    "C1 next line": "\x85",
    "C1 CSI": "\x9b",
    "left-to-right embedding": "\u202a",
    "right-to-left override": "\u202e",
    "left-to-right isolate": "\u2066",
    "first strong isolate": "\u2068",
    "pop directional isolate": "\u2069",
    "right-to-left mark": "\u200f",
    "Arabic letter mark": "\u061c",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "word joiner": "\u2060",
    "invisible separator": "\u2063",
    "byte-order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "interlinear annotation": "\ufff9",
    "tag letter": "\U000e0041",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "lone surrogate": "\ud800",
    "noncharacter U+FFFE": "\ufffe",
    "noncharacter U+FDD0": "\ufdd0",
    "noncharacter U+10FFFF": "\U0010ffff",
}
"""One character of every class ``clean_text`` refuses, by what it is."""

KEPT: dict[str, str] = {
    "Chinese name": "欧阳娜娜",
    "ideographic space": "上海市\u3000浦东新区",
    "ideographic variation sequence": "葛\U000e0100",
    "private-use rare character": "王\ue000",
    "middle dot in a minority name": "买买提·艾力",
    "Latin with accents": "Zoë Ångström",
    "emoji": "办事快👍",
}


@pytest.mark.parametrize("char", list(HOSTILE.values()), ids=list(HOSTILE))
@pytest.mark.parametrize("where", ["alone", "start", "middle", "end"])
def test_each_hostile_class_is_refused_naming_field_and_position(char: str, where: str) -> None:
    """A refused character anywhere in the text is invalid_text naming the field and its
    position, never the text around it."""
    text = {
        "alone": char,
        "start": char + "张三",
        "middle": "张" + char + "三",
        "end": "张三" + char,
    }
    with pytest.raises(TextError) as caught:
        clean_text(text[where], field="applicant.name")
    error = caught.value
    assert (error.code, error.field) == (INVALID_TEXT, "applicant.name")
    assert str(error).startswith("applicant.name: ")
    assert f"U+{ord(char):04X}" in str(error)
    assert "张" not in str(error)
    position = text[where].index(char) + 1
    assert f"character {position}" in str(error)


@pytest.mark.parametrize("text", list(KEPT.values()), ids=list(KEPT))
def test_ordinary_text_is_kept_as_it_is(text: str) -> None:
    """Names, addresses and comments as people write them pass unchanged."""
    assert clean_text(text, field="f") == text


def test_text_is_normalised_to_nfc_before_its_length_is_judged() -> None:
    """A decomposed é becomes one character; the length bound counts the normalised text."""
    assert clean_text("Zoe\u0308", field="f") == "Zoë"
    assert clean_text("e\u0301" * 3, field="f", max_length=3) == "é" * 3
    with pytest.raises(TextError, match="at most 2"):
        clean_text("e\u0301" * 3, field="f", max_length=2)


def test_signed_text_must_already_be_normalised() -> None:
    """With normalise=False (a peer's signed text) a decomposed é is refused, not changed."""
    assert clean_text("Zoë", field="f", normalise=False) == "Zoë"
    with pytest.raises(TextError, match="normal form C"):
        clean_text("Zoe\u0308", field="body.x", normalise=False)


@given(st.text(st.characters(exclude_categories=("Cc", "Cf", "Cs", "Zl", "Zp")), max_size=40))
def test_whatever_passes_is_nfc_and_passes_again_unchanged(text: str) -> None:
    """What clean_text returns is in normal form C and is its own clean form."""
    try:
        cleaned = clean_text(text, field="f")
    except TextError:
        return  # a noncharacter
    assert clean_text(cleaned, field="f", normalise=False) == cleaned


NOT_NUMBERS: dict[str, str] = {
    "superscript two": "²",
    "Arabic-Indic one": "١",
    "Arabic-Indic three": "٣",
    "fullwidth one": "１",
    "Devanagari two": "२",
    "circled one": "①",
    "minus sign": "-1",
    "plus sign": "+1",
    "space": " 1",
    "underscore": "1_0",
    "exponent": "1e2",
    "hex": "0x10",
    "empty": "",
    "19 digits": "1" * 19,
}


@pytest.mark.parametrize("text", list(NOT_NUMBERS.values()), ids=list(NOT_NUMBERS))
def test_only_ascii_digits_are_a_number(text: str) -> None:
    """What str.isdigit or int() would take but is not plain ASCII digits is no number."""
    assert ascii_integer(text) is None


def test_ascii_digits_within_range_are_read() -> None:
    assert [ascii_integer(t) for t in ("0", "007", "200", "1" * 18)] == [0, 7, 200, int("1" * 18)]
    assert ascii_integer("201", low=1, high=200) is None
    assert ascii_integer("0", low=1, high=200) is None
    assert ascii_integer("1", low=1, high=200) == 1
