"""Fetched pages staged on disk, outside the live tables, until a stream's fetch is complete.

Each page becomes one newline-delimited JSON file, so memory holds one page at a time and DuckDB
reads the whole stream back in bulk (``read_json_objects``) inside the apply transaction.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson


def encode_record(record: Any) -> bytes:
    """One record as a staged line: compact JSON, UTF-8."""
    try:
        return orjson.dumps(record)
    except TypeError:
        # orjson refuses integers beyond 64 bits, which the json module decodes happily; such a
        # record must reach validation (and quarantine if it fails there), not end the stream.
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


class StreamStage:
    """The staged pages of one stream of one job."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pages = 0
        self.records = 0
        self.bytes = 0

    def write_page(self, records: Iterable[Any]) -> int:
        lines = [encode_record(record) for record in records]
        if not lines:
            return 0
        self.pages += 1
        path = self.directory / f"{self.pages:07d}.ndjson"
        payload = b"\n".join(lines) + b"\n"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(payload)
        tmp.replace(path)  # a page is visible whole or not at all
        self.records += len(lines)
        self.bytes += len(payload)
        return len(lines)

    def files(self) -> list[str]:
        return [str(p) for p in sorted(self.directory.glob("*.ndjson"))]


class JobStage:
    """The staging folder of one job: ``<data dir>/staging/<job id>/<stream>/``."""

    def __init__(self, root: Path, job_id: str) -> None:
        self.directory = root / job_id
        self.directory.mkdir(parents=True, exist_ok=True)

    def stream(self, name: str) -> StreamStage:
        return StreamStage(self.directory / name)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def remove_stale_stages(root: Path, keep: set[str]) -> None:
    """Delete staging folders of jobs that are no longer running (killed processes leave them)."""
    if not root.exists():
        return
    for child in root.iterdir():
        if child.is_dir() and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
