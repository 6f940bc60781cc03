"""One writer, many readers, separate processes: no lock error reaches a reader, no half batch is seen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from aria_sync.store import Database

WRITER = textwrap.dedent(
    """
    import sys, time
    from aria_sync.store import Database
    db = Database(sys.argv[1])
    for batch in range(int(sys.argv[2])):
        with db.write() as conn:
            for n in range(10):  # ten rows per transaction: a reader must see 0, 10, 20, ... never 13
                conn.execute("INSERT INTO assets (asset_id, org_id, name) VALUES (?, 'acme', 'x')",
                             [f"{batch}-{n}"])
            time.sleep(0.01)
    print("done", flush=True)
    """
)

READER = textwrap.dedent(
    """
    import json, sys, time
    from aria_sync.store import Database, OrgScope
    scope = OrgScope(Database(sys.argv[1]), "acme")
    seen, errors, deadline = [], [], time.monotonic() + float(sys.argv[2])
    while time.monotonic() < deadline:
        try:
            with scope.read() as conn:
                seen.append(int(conn.scalar("SELECT count(*) FROM assets")))
        except Exception as exc:
            errors.append(repr(exc))
        if seen and seen[-1] >= int(sys.argv[3]):
            break
    print(json.dumps({"seen": seen, "errors": errors}))
    """
)


def test_reader_process_sees_only_committed_states(
    db: Database, tmp_path: Path, proof_figure: Callable[..., None]
) -> None:
    db.ensure_schema()
    batches = 100
    env = {**os.environ}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db.path), str(batches)], env=env, stdout=subprocess.PIPE, text=True
    )
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(db.path), "60", str(batches * 10)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    out, _ = writer.communicate(timeout=120)
    assert writer.returncode == 0 and "done" in out
    reports = [json.loads(reader.communicate(timeout=120)[0]) for reader in readers]
    polls = sum(len(report["seen"]) for report in reports)
    half = sum(1 for report in reports for count in report["seen"] if count % 10)
    lock_errors = sum(len(report["errors"]) for report in reports)
    proof_figure(
        "concurrency",
        f"{len(readers)} reader processes, {polls} polls during {batches} committed batches: "
        f"{half} half-applied batches seen, {lock_errors} errors",
    )
    for report in reports:
        assert report["errors"] == []
        assert len(report["seen"]) >= 5
        assert all(count % 10 == 0 for count in report["seen"]), report["seen"]
        assert report["seen"] == sorted(report["seen"])
        assert report["seen"][-1] == batches * 10


def test_a_writer_waiting_behind_readers_is_not_starved(db: Database) -> None:
    db.ensure_schema()
    env = {**os.environ}
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(db.path), "8", str(10**9)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        writer = subprocess.run(
            [sys.executable, "-c", WRITER, str(db.path), "20"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert writer.returncode == 0, writer.stderr
    finally:
        for reader in readers:
            reader.communicate(timeout=60)
