"""Every error aria_sync raises on purpose, named by what the caller does about it.

The tree::

    AriaSyncError
    ├── UsageError                      bad input from the user; the CLI exits 2
    │   ├── ConfigurationError          config is missing, unknown or of the wrong type
    │   │   └── UrlPolicyError          a vendor URL is refused (scheme, private address, host)
    │   ├── UnknownIntegrationError     no such integration key
    │   ├── NotFoundError               no such installation, job, ...
    │   └── ConflictError               duplicate installation name, ...
    ├── PermissionDeniedError           the actor's role does not allow the action
    ├── AlreadyRunningError             a sync of this installation is already running
    ├── SourceError                     the vendor side failed; carries connector, stream, url
    │   ├── FatalSourceError            stop syncing this installation now
    │   │   ├── AuthenticationError     credentials rejected (401, AADSTS...)
    │   │   ├── AuthorizationError      credentials valid, a permission/role is missing (403)
    │   │   ├── MalformedResponseError  a body that is not what the API promises
    │   │   ├── PaginationLoopError     the vendor's paging repeats or leaves the host
    │   │   ├── UnexpectedRedirectError a redirect we refuse to follow with credentials
    │   │   └── RetryBudgetExhausted    retriable failures went on past the budget
    │   ├── RetriableSourceError        the shared HTTP client retries these with backoff
    │   │   ├── RateLimitedError        429; carries ``retry_after`` seconds
    │   │   ├── ServerError             5xx
    │   │   └── NetworkError            connect error, timeout, reset, truncated body
    │   └── SkippableRecordError        one record is bad: quarantine it and go on
    ├── ExportJobError                  an asynchronous export job failed
    │   └── ExportJobTimeout            it did not finish before its deadline
    ├── StoreError                      DuckDB, schema or state problems
    │   ├── DatabaseBusyError           another process kept the database past our wait
    │   ├── SchemaVersionError          the database is newer than this aria_sync
    │   ├── CorruptDatabaseError        the file is not a readable DuckDB database
    │   └── StagingError                staged pages did not read back whole; nothing applied
    └── VaultError                      the credential store failed
        └── VaultLockedError            secrets cannot be decrypted (missing or wrong key)

Messages never contain secrets: the HTTP layer redacts URLs and headers before building them.
"""

from __future__ import annotations


class AriaSyncError(Exception):
    """Base of every deliberate aria_sync error."""


class UsageError(AriaSyncError):
    """The user asked for something impossible; fix the input and retry."""


class ConfigurationError(UsageError):
    """An installation's configuration is missing a key, has an unknown key or a wrong type."""


class UrlPolicyError(ConfigurationError):
    """A vendor URL is refused by the URL policy (https only, public addresses, same host)."""


class UnknownIntegrationError(UsageError):
    """No integration with that key exists in the catalogue."""


class NotFoundError(UsageError):
    """The named installation (or job, or record) does not exist in this organisation."""


class ConflictError(UsageError):
    """The request conflicts with existing state, e.g. a duplicate installation name."""


class PermissionDeniedError(AriaSyncError):
    """The acting user's role does not allow this action."""


class AlreadyRunningError(AriaSyncError):
    """A sync of this installation is already running; this one did not start."""


class SourceError(AriaSyncError):
    """The vendor API failed. ``url`` is always sanitised (no credentials, no secret params)."""

    def __init__(
        self,
        message: str,
        *,
        connector: str | None = None,
        stream: str | None = None,
        url: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.connector = connector
        self.stream = stream
        self.url = url
        self.status = status

    def __str__(self) -> str:
        return self.message


class FatalSourceError(SourceError):
    """Retrying will not help; stop syncing this installation."""


class AuthenticationError(FatalSourceError):
    """The vendor rejected the credentials."""


class AuthorizationError(FatalSourceError):
    """The credentials are valid but lack a permission or role."""


class MalformedResponseError(FatalSourceError):
    """The vendor answered with something that is not the documented shape."""


class PaginationLoopError(FatalSourceError):
    """The vendor's pagination repeated itself or pointed off the configured host."""


class UnexpectedRedirectError(FatalSourceError):
    """The vendor redirected to another host or scheme; credentials are never sent there."""


class RetryBudgetExhausted(FatalSourceError):
    """Retriable failures went on past the per-job retry budget."""


class RetriableSourceError(SourceError):
    """A transient failure; the shared HTTP client retries it with backoff."""


class RateLimitedError(RetriableSourceError):
    """The vendor answered 429. ``retry_after`` is the clamped wait in seconds, if it said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServerError(RetriableSourceError):
    """The vendor answered with a 5xx status."""


class NetworkError(RetriableSourceError):
    """Connect error, timeout, connection reset or a truncated body."""


class SkippableRecordError(SourceError):
    """One record cannot be used; it is quarantined with this reason and the sync goes on."""


class ExportJobError(AriaSyncError):
    """A vendor-side asynchronous export failed (status ERROR, CANCELLED, failed chunks)."""


class ExportJobTimeout(ExportJobError):
    """An export did not finish before its deadline and was cancelled."""


class StoreError(AriaSyncError):
    """The local DuckDB store failed."""


class DatabaseBusyError(StoreError):
    """Another process held the database longer than the bounded wait."""


class SchemaVersionError(StoreError):
    """The database was written by a newer aria_sync than this one."""


class CorruptDatabaseError(StoreError):
    """The database file cannot be opened as DuckDB."""


class StagingError(StoreError):
    """A stream's staged pages did not read back whole; nothing of the stream was applied."""


class VaultError(AriaSyncError):
    """The credential vault failed."""


class VaultLockedError(VaultError):
    """Secrets cannot be decrypted: the master key is missing or wrong."""
