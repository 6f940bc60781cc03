"""The shape of a connector: catalogue entry, config model, streams, fetch functions, transforms.

A connector is declarations plus HTTP-only fetch functions. The engine (``aria_sync.sync``) owns
staging, loading, stale marking, cursors, rejected records and job accounting; the shared HTTP
client (``aria_sync.http``) owns retries, rate limits, the URL policy and redaction.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import duckdb
from pydantic import BaseModel, ConfigDict, SecretStr

Page = list[dict[str, Any]]

# Table and stream names are put into SQL text (identifiers cannot be bound as parameters), so a
# declaration is refused unless each is a plain lower-case identifier.
SQL_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,62}")


class IntegrationConfig(BaseModel):
    """Base of every connector's config model. Secret fields are ``SecretStr``; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)

    @classmethod
    def secret_fields(cls) -> list[str]:
        return [name for name, f in cls.model_fields.items() if f.annotation in (SecretStr, SecretStr | None)]

    @classmethod
    def url_fields(cls) -> list[str]:
        return [name for name, f in cls.model_fields.items() if (f.json_schema_extra or {}).get("url")]  # type: ignore[union-attr]

    def secret_values(self) -> list[str]:
        values = []
        for name in self.secret_fields():
            value = getattr(self, name)
            if isinstance(value, SecretStr) and value.get_secret_value():
                values.append(value.get_secret_value())
        return values


def url_field(default: Any, description: str) -> Any:
    """A URL config field: checked by the URL policy before any request is made."""
    from pydantic import Field

    return Field(default=default, description=description, json_schema_extra={"url": True})


@dataclass(frozen=True)
class Capability:
    """Something the integration can do, and the vendor permission it needs."""

    name: str
    description: str
    permission: str


@dataclass(frozen=True)
class CapabilityResult:
    capability: str
    ok: bool
    message: str


@dataclass(frozen=True)
class CursorSpec:
    """How the engine derives a stream's next cursor from the rows it applied.

    ``expression`` is SQL over the landing table's ``raw`` JSON column; the new cursor is its
    maximum over the rows of a complete fetch. ``kind`` tells how to compare values.
    """

    expression: str
    kind: Literal["timestamp", "number", "string"] = "timestamp"


@dataclass(frozen=True)
class FetchRequest:
    """What the engine hands a fetch function for one stream of one job."""

    cursor: str | None  # None on a first or --full sync
    full_refresh: bool
    state: Mapping[str, Any]  # the stream's saved state (cursor included)
    progress: Callable[[str], None] = lambda message: None


@dataclass
class DeriveContext:
    """Where a transform writes ARIA rows: inside the stream's apply transaction."""

    conn: duckdb.DuckDBPyConnection
    org: str
    installation_id: str
    integration_key: str
    job_id: str
    table: str  # the landing table
    staged: str  # name of the temp table holding this job's accepted rows (source_id, raw, ...)
    now: Any
    # Relation of the source_ids this run touched (accepted or removed): cheap, keys only.
    touched: str = "_touched"
    # Relation (source_id, raw, is_deleted) of the touched records as the landing table now holds
    # them, read from the staged pages where it can: what a transform rebuilds ARIA rows from.
    rows: str = "_touched_rows"


Derive = Callable[[DeriveContext], None]


@dataclass(frozen=True)
class Stream:
    """One vendor collection, declared: where it lands, how it is keyed, how it is fetched."""

    name: str
    table: str
    primary_key: str  # SQL over `raw`, e.g. "raw->>'$.id'"
    fetch: Callable[[Any, FetchRequest], Iterator[Page]]
    cursor: CursorSpec | None = None  # None: full refresh every run
    marks_stale: bool = True  # full refresh only: rows absent from a complete fetch become is_deleted
    deleted: str | None = None  # SQL predicate over `raw`: the vendor itself says the record is deleted
    checks: tuple[tuple[str, str], ...] = ()  # (SQL predicate over `raw` true for a bad record, reason)
    derive: tuple[Derive, ...] = ()
    targets: tuple[str, ...] = ()  # ARIA tables this stream feeds (documentation and the catalogue)
    description: str = ""
    capability: str | None = None  # which capability (permission) the stream needs
    # Columns the data views show: (label, SQL over `raw`). Empty: source_id and raw only.
    columns: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        for what, value in (
            ("name", self.name),
            ("table", self.table),
            *(("target", t) for t in self.targets),
        ):
            if not SQL_IDENTIFIER.fullmatch(value):
                raise ValueError(f"stream {what} {value!r} is not a plain lower-case SQL identifier")

    @property
    def incremental(self) -> bool:
        return self.cursor is not None


@dataclass
class ConnectorContext:
    """What the engine gives a connector session: URL allow-list, retry budget, clock, secrets to redact."""

    allowed: Any  # aria_sync.http.AllowList
    budget: Any  # aria_sync.http.RetryBudget
    secrets: Sequence[str] = ()
    sleep: Callable[[float], None] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


class Connector:
    """Base class of a connector. Subclasses set the class attributes and implement two methods."""

    key: ClassVar[str]
    name: ClassVar[str]
    vendor: ClassVar[str]
    category: ClassVar[str]
    auth_type: ClassVar[str]
    description: ClassVar[str]
    config_model: ClassVar[type[IntegrationConfig]]
    capabilities: ClassVar[tuple[Capability, ...]] = ()
    streams: ClassVar[tuple[Stream, ...]] = ()
    docs_path: ClassVar[str] = ""
    status: ClassVar[Literal["available", "coming_soon"]] = "available"

    def session(
        self, config: IntegrationConfig, context: ConnectorContext
    ) -> contextlib.AbstractContextManager[Any]:
        """An open API session (HTTP clients, tokens) used by test_connection and every fetch."""
        raise NotImplementedError

    def test_connection(self, session: Any) -> list[CapabilityResult]:
        """Check each capability separately; never raise for a missing permission, report it."""
        raise NotImplementedError

    def stream(self, name: str) -> Stream:
        for stream in self.streams:
            if stream.name == name:
                return stream
        raise KeyError(name)


class ComingSoonConnector(Connector):
    """A catalogue entry whose sync is not built yet: it can be browsed, not installed."""

    status: ClassVar[Literal["available", "coming_soon"]] = "coming_soon"
