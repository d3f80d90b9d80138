"""Cells that a spreadsheet opens as text, never as a formula (OWASP "CSV injection").

Excel, LibreOffice and Google Sheets run a cell that begins with ``=``, ``+``, ``-``, ``@``, a
tab or a carriage return as a formula. Every exported text that a student can influence (a
folder name, a display name from a roster, an error reason) goes through ``safe_cell``: such a
cell gets a leading single quote, which the spreadsheet shows as plain text. Numbers are left
as they are (a negative score is a number, not text).
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` unchanged, unless it is text a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(row: list[Any]) -> list[Any]:
    return [safe_cell(value) for value in row]
