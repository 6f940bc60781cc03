"""Fetched pages staged on disk, outside the live tables, until a stream's fetch is complete.

Each page becomes one file, so memory holds one page at a time and DuckDB reads the whole stream
back in bulk inside the apply transaction. A line is
``<sequence number> TAB <record hash> TAB <record as JSON>``:

- the number is the record's place in the fetch (the last copy of a key wins), written here so
  DuckDB never has to number the rows itself, which would make every pass over them serial;
- the hash (XXH3-128 of the JSON text, 32 hex digits) is what tells an unchanged record from a
  changed one; it is taken here, while the next page is still on its way, because hashing in the
  apply costs more than the rest of its first pass (100,000 CMDB items: 0.17 s for DuckDB's
  md5 on two cores, 0.04 s for XXH3 on one);
- JSON text never holds a raw tab or newline (they are escaped inside strings), so the line
  splits unambiguously without quoting.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import xxhash

from aria_sync.store import sql_string

# The CSV reader is told the longest staged line and reads buffers of 16 times that (DuckDB's own
# ratio: 2 MiB lines, 32 MiB buffers), at least 1 MiB. Vendor records are a few kB, so buffers are
# mostly 1 MiB instead of 32: each reading thread pins one, and at a low memory limit those 32 MiB
# blocks were what a bulk apply failed to allocate. (Scanning 200,000 staged Tenable findings took
# 0.12 s with 1 MiB buffers against 0.13 s with 32 MiB. With buffers under about 16 lines, the
# parallel reader refused some files and silently skipped a line in others.)
_MIN_LINE_SIZE = 64 * 1024
_MIN_BUFFER_SIZE = 1024 * 1024
_BUFFER_LINES = 16


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
        self.longest = 0  # longest line so far: DuckDB's line reader must be told to expect it

    def write_page(self, records: Iterable[Any]) -> int:
        """Append one page as its own file, a line at a time: an export page of 50,000 rows is
        already held once as Python objects, and joining its lines would hold it twice more."""
        path = self.directory / f"{self.pages + 1:07d}.tsv"
        tmp = path.with_suffix(".tmp")
        digest = xxhash.xxh3_128_hexdigest
        seq, longest, size = self.records, self.longest, 0
        with tmp.open("wb", buffering=1024 * 1024) as handle:
            for record in records:
                seq += 1
                text = encode_record(record)
                line = b"%d\t%s\t%b\n" % (seq, digest(text).encode(), text)
                handle.write(line)
                size += len(line)
                longest = max(longest, len(line))
        written = seq - self.records
        if not written:
            tmp.unlink()
            return 0
        tmp.replace(path)  # a page is visible whole or not at all
        self.pages += 1
        self.records, self.longest, self.bytes = seq, longest, self.bytes + size
        return written

    def files(self) -> list[str]:
        return [str(p) for p in sorted(self.directory.glob("*.tsv"))]

    def relation_sql(self) -> str:
        """The staged records as rows ``(seqno, record_hash, raw)``; DuckDB's CSV reader splits them
        in parallel.

        ``raw`` is read as VARCHAR, not JSON: every line was written by a JSON encoder, and a JSON
        column would parse each record once more, on every pass, only to validate it (200,000
        Tenable findings: about 0.1 s a pass). The landing table's JSON column still checks it once.
        """
        files = self.files()
        if not files:
            return "(SELECT NULL::BIGINT AS seqno, NULL::VARCHAR AS record_hash, NULL::VARCHAR AS raw WHERE false)"
        listed = ", ".join(sql_string(f) for f in files)
        line_size = max(_MIN_LINE_SIZE, self.longest + 1024)
        return (
            f"(SELECT seqno, record_hash, raw FROM read_csv([{listed}], delim = '\\t', quote = '', escape = '', "
            "header = false, auto_detect = false, columns = {'seqno': 'BIGINT', 'record_hash': 'VARCHAR', 'raw': 'VARCHAR'}, "
            f"max_line_size = {line_size}, buffer_size = {max(_MIN_BUFFER_SIZE, _BUFFER_LINES * line_size)}))"
        )


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
