"""CLI output: tables and progress for people, one JSON document for scripts (``--json``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat(timespec="seconds"))
    return str(value)


class Output:
    def __init__(self, *, json_mode: bool) -> None:
        self.json_mode = json_mode
        # Piped output is read by grep and log files, not by a narrow terminal: don't fold it at 80.
        width = None if sys.stdout.isatty() else 220
        self.console = Console(highlight=False, soft_wrap=True, width=width)
        self.err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 220)

    def error(self, message: str) -> None:
        # One line, never wrapped: scripts grep for it.
        sys.stderr.write("error: " + " ".join(message.split()) + "\n")

    def info(self, message: str) -> None:
        """A line for people; in --json mode it goes to stderr so stdout stays one JSON document."""
        (self.err if self.json_mode else self.console).print(message, markup=False)

    def emit_json(self, payload: Any) -> None:
        sys.stdout.write(json.dumps(payload, default=_plain, indent=2) + "\n")
        sys.stdout.flush()

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
        table = Table(title=title, show_lines=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(_plain(v) for v in row))
        self.console.print(table)

    @contextmanager
    def progress(self, label: str) -> Iterator[Any]:
        """A progress bar on a terminal (stderr); nothing when piped or in --json mode."""
        if self.json_mode or not sys.stderr.isatty():
            yield None
            return
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.err,
            transient=False,
        ) as bar:
            task = bar.add_task(label, total=1.0, detail="")
            yield lambda fraction, detail: bar.update(task, completed=fraction, detail=detail)
