"""Cross-process locks on plain files (fcntl.flock), released by the OS when a process dies.

DuckDB lets one process write a file, and while it does no other process may even open it.
So every process that touches the database first takes our own lock beside it:

* readers take the lock *shared* and open DuckDB read-only; many readers run together;
* a writer takes it *exclusive* and opens DuckDB read-write, briefly.

A "gate" lock gives waiting writers priority: readers pass through the gate before taking their
shared lock, and a writer holds the gate while it waits for readers to drain, so a dashboard that
polls continuously cannot starve a sync.

flock locks belong to an open file description, so two threads of one process that each open the
lock file exclude each other exactly like two processes do.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from aria_sync.errors import AlreadyRunningError, DatabaseBusyError


def _open_lock_file(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def _acquire(fd: int, mode: int, deadline: float, what: str) -> None:
    delay = 0.002
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise DatabaseBusyError(what) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


@contextlib.contextmanager
def file_lock(path: Path, *, exclusive: bool, timeout: float, busy_message: str) -> Iterator[None]:
    """Hold a shared or exclusive lock on ``path`` for the block; wait at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    fd = _open_lock_file(path)
    try:
        _acquire(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH, deadline, busy_message)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@contextlib.contextmanager
def database_lock(db_path: Path, *, write: bool, timeout: float) -> Iterator[None]:
    """The reader/writer lock of one database file, with writer priority (see module docstring)."""
    main = db_path.with_name(db_path.name + ".lock")
    gate = db_path.with_name(db_path.name + ".gate")
    message = (
        f"database busy: {db_path} stayed locked by another aria-sync process for {timeout:.0f}s; "
        "try again when the running sync has finished"
    )
    deadline = time.monotonic() + timeout
    gate_fd = _open_lock_file(gate)
    main_fd = _open_lock_file(main)
    try:
        _acquire(gate_fd, fcntl.LOCK_EX, deadline, message)
        if write:
            _acquire(main_fd, fcntl.LOCK_EX, deadline, message)
            fcntl.flock(gate_fd, fcntl.LOCK_UN)
        else:
            try:
                _acquire(main_fd, fcntl.LOCK_SH, deadline, message)
            finally:
                fcntl.flock(gate_fd, fcntl.LOCK_UN)
        yield
    finally:
        os.close(main_fd)
        os.close(gate_fd)


class InstallationLock:
    """Held for the whole of one sync, so a second sync of the same installation refuses to start.

    The lock file lives beside the database; a SIGKILLed holder releases it automatically, which is
    how the next start knows a job still marked ``running`` was interrupted.
    """

    def __init__(self, db_path: Path, installation_id: str) -> None:
        self.path = db_path.parent / ".locks" / f"{db_path.name}.{installation_id}.lock"
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        fd = _open_lock_file(self.path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def acquire_or_raise(self, name: str) -> None:
        if not self.try_acquire():
            raise AlreadyRunningError(f"a sync of {name!r} is already running; this one did not start")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def is_held_elsewhere(self) -> bool:
        """True when some live process holds the lock (we try and immediately release)."""
        if self._fd is not None:
            return False
        if not self.try_acquire():
            return True
        self.release()
        return False
