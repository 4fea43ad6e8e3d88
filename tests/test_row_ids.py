"""config.database's row-id rule: what a URL or a form may name as an id."""

from __future__ import annotations

import pytest

from config.database import MAX_ROW_ID, is_row_id, parse_row_id


@pytest.mark.parametrize("good", ["1", "42", str(MAX_ROW_ID), 7, MAX_ROW_ID])
def test_ids_in_the_columns_range_are_taken(good):
    assert parse_row_id(good) == int(good)


@pytest.mark.parametrize(
    "bad",
    [
        "0", "-1", str(MAX_ROW_ID + 1), "1180591620717411303424", "²", "１２", "٣", " 1", "1 ",
        "+1", "1.0", "", "0x10", "1e3", None, True, 1.0, 0, MAX_ROW_ID + 1, [1],
    ],
)  # fmt: skip
def test_anything_else_is_none_never_an_exception(bad):
    """str.isdigit() says yes to "²" (int() then raises) and to "１２" (int() reads 12)."""
    assert parse_row_id(bad) is None
    assert not is_row_id(bad)
