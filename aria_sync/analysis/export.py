"""Exports of analysis results as bytes, safe to open in a spreadsheet."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd

from aria_sync.errors import UsageError

# A spreadsheet treats a cell starting with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
EXPORT_FORMATS = ("csv", "parquet")


def neutralise_cell(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula gets a leading ``'``; anything else is unchanged.

    Numbers stay numbers: a numeric cell such as -3 is written by pandas as digits and cannot be a formula.
    """
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_PREFIXES) else value
    if isinstance(value, list | tuple | dict | np.ndarray):
        return neutralise_cell(_as_text(value))
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return json.dumps(value, default=str, ensure_ascii=False)


def export_frame(df: pd.DataFrame, fmt: str) -> bytes:
    """The frame as ``"csv"`` (UTF-8, CRLF, formula cells neutralised) or ``"parquet"`` bytes.

    Example::

        >>> data = aria.export_frame(aria.coverage_gaps(), "csv")  # doctest: +SKIP
        >>> open("gaps.csv", "wb").write(data)  # doctest: +SKIP
    """
    if fmt == "csv":
        safe = df.copy()
        for column in safe.columns:
            if not (
                pd.api.types.is_numeric_dtype(safe[column])
                or pd.api.types.is_datetime64_any_dtype(safe[column])
            ):
                safe[column] = safe[column].map(neutralise_cell)
        safe.columns = [neutralise_cell(str(c)) for c in safe.columns]
        # RFC 4180 line ends: with "\n" alone the writer leaves a bare "\r" in a cell unquoted,
        # and readers then split the row there.
        return safe.to_csv(index=False, lineterminator="\r\n").encode("utf-8")
    if fmt == "parquet":
        buffer = io.BytesIO()
        df.to_parquet(buffer, index=False)
        return buffer.getvalue()
    raise UsageError(f"unknown export format {fmt!r}; use one of: {', '.join(EXPORT_FORMATS)}")
