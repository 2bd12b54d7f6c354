"""Columns that do not fit the width go to another page, the first (the row's name) on every page."""

from llmtop.tui.table_pages import column_pages


def test_columns_fill_pages_in_order_with_the_first_on_each():
    assert column_pages([10, 8, 8, 8], 100) == [[0, 1, 2, 3]]
    assert column_pages([10, 8, 8, 8], 27) == [[0, 1, 2], [0, 3]]
    assert column_pages([10, 8, 8, 8], 18) == [[0, 1], [0, 2], [0, 3]]


def test_a_column_wider_than_a_page_gets_one_of_its_own():
    assert column_pages([10, 50, 8], 30) == [[0, 1], [0, 2]]


def test_no_columns_is_one_empty_page():
    assert column_pages([], 80) == [[]]
    assert column_pages([12], 80) == [[0]]
