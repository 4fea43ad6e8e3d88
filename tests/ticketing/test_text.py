"""ticketing.text: the rules for text from outside (normalise_text is tested with the inputs it
guards, in tests/agent_console/test_bad_input.py)."""

from __future__ import annotations

import pytest

from ticketing import is_digits


@pytest.mark.parametrize("good", ["0", "2027", "8001", "0123456789"])
def test_ascii_digits_are_digits(good: str) -> None:
    assert is_digits(good)


@pytest.mark.parametrize("bad", ["", "²", "２０２７", "٣", "12a", " 12", "-1", "1.0", "一二"])
def test_other_digits_and_anything_else_are_not(bad: str) -> None:
    """str.isdigit() says yes to the first four of these but int() refuses "²" and reads the rest."""
    assert not is_digits(bad)
