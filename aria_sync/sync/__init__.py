"""The sync engine: jobs, staging, loading, cursors and accounting shared by every connector."""

from aria_sync.sync.engine import Progress, SyncResult, SyncRunner, recover_interrupted

__all__ = ["Progress", "SyncResult", "SyncRunner", "recover_interrupted"]
