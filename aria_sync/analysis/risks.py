"""The risk register: risks by level and status, and the top risks with their score explained."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from aria_sync.analysis._context import DbArg, OneOrMany, Query, scoped_read
from aria_sync.errors import UsageError

# Register statuses that take a risk off the "what to work on" list.
CLOSED_RISK_STATUSES = ("closed", "resolved", "accepted", "mitigated", "fixed")
_RISK_COLUMNS = (
    "risk_id, title, category, source, source_ref, likelihood, impact, score, level, status, "
    "affected_assets, score_breakdown, created_at, updated_at"
)
_RISK_ORDER = "score DESC NULLS LAST, affected_assets DESC NULLS LAST, risk_id"


def _risks_query(level: OneOrMany, status: OneOrMany) -> Query:
    query = Query(_RISK_COLUMNS, "risks", order_by=_RISK_ORDER)
    query.equals("level", "level", level)
    query.equals("status", "status", status)
    return query


def risks(
    level: OneOrMany = None,
    status: OneOrMany = None,
    *,
    limit: int | None = None,
    offset: int = 0,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """Risks of the register, highest score first.

    Example::

        >>> aria.risks(level=["critical", "high"], status="open", limit=25)  # doctest: +SKIP
    """
    query = _risks_query(level, status)
    with scoped_read(db, org) as conn:
        return query.frame(conn, limit, offset)


def count_risks(
    level: OneOrMany = None,
    status: OneOrMany = None,
    *,
    db: DbArg = None,
    org: str | None = None,
) -> int:
    """How many risks :func:`risks` returns with the same filters.

    Example::

        >>> aria.count_risks(level="critical")  # doctest: +SKIP
    """
    query = _risks_query(level, status)
    with scoped_read(db, org) as conn:
        return query.count(conn)


def top_risks(
    n: int = 10,
    *,
    include_closed: bool = False,
    db: DbArg = None,
    org: str | None = None,
) -> pd.DataFrame:
    """The ``n`` highest-scoring risks with ``score_breakdown`` expanded into ``breakdown_*`` columns.

    Nested breakdown objects flatten with ``_`` (``{"impact": {"asset": 3}}`` becomes
    ``breakdown_impact_asset``). Closed, resolved, accepted and mitigated risks are left out
    unless ``include_closed``.

    Example::

        >>> aria.top_risks(5)[["title", "score", "breakdown_likelihood"]]  # doctest: +SKIP
    """
    if not isinstance(n, int) or n < 0:
        raise UsageError(f"n must be a non-negative integer, not {n!r}")
    query = Query(_RISK_COLUMNS, "risks", order_by=_RISK_ORDER)
    if not include_closed:
        closed = ", ".join(f"'{s}'" for s in CLOSED_RISK_STATUSES)
        query.add(f"lower(coalesce(status, '')) NOT IN ({closed})")
    with scoped_read(db, org) as conn:
        frame = query.frame(conn, n, 0)
    return _expand_breakdown(frame)


def _expand_breakdown(frame: pd.DataFrame) -> pd.DataFrame:
    flat_rows = [_flatten(_parse(value)) for value in frame["score_breakdown"]]
    keys: list[str] = []
    for row in flat_rows:
        keys.extend(k for k in row if k not in keys)
    expanded = frame.drop(columns=["score_breakdown"])
    for key in keys:
        expanded[f"breakdown_{key}"] = [row.get(key) for row in flat_rows]
    return expanded


def _parse(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value:
        try:
            parsed = json.loads(value)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat
