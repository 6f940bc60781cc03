"""`aria-sync`: the command line. Exit codes: 0 ok, 1 failed, 2 usage error, 3 partial."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aria_sync.cli import commands
from aria_sync.cli.output import Output
from aria_sync.errors import (
    AlreadyRunningError,
    AriaSyncError,
    PermissionDeniedError,
    StoreError,
    UsageError,
    VaultError,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _global_options(*, suppress: bool) -> _Parser:
    # Subcommands repeat the global options so they work on either side of the command name; there
    # their defaults are suppressed, or they would overwrite a value given before the command.
    default = argparse.SUPPRESS if suppress else None
    common = _Parser(add_help=False)
    common.add_argument(
        "--db", metavar="PATH", default=default, help="DuckDB file (default $ARIA_SYNC_DB or data/aria.duckdb)"
    )
    common.add_argument(
        "--org", metavar="ORG", default=default, help="organisation to act for (default $ARIA_SYNC_ORG or default)"
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="machine-readable output on stdout, nothing else",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _global_options(suppress=True)
    parser = _Parser(
        prog="aria-sync",
        description="Sync Microsoft Defender, ServiceNow and Tenable into one DuckDB file, normalised to the "
        "ARIA cyber-risk schema.",
        parents=[_global_options(suppress=False)],
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("catalog", parents=[common], help="list the integrations you can install")

    p = sub.add_parser("install", parents=[common], help="install an integration with its config")
    p.add_argument("key", help="integration key, e.g. tenable, ms-defender, servicenow")
    p.add_argument("--name", required=True, help="a unique name for this installation")
    p.add_argument("--config", required=True, metavar="FILE", help="JSON config file, or - for stdin")
    p.add_argument("--no-test", action="store_true", help="install without testing the connection first")
    p.add_argument(
        "--schedule", metavar="EVERY", help="sync schedule: an interval (6h, 30m) or a cron expression"
    )
    p.add_argument(
        "--max-stale-fraction",
        type=float,
        default=None,
        help="largest share of rows one full sync may mark deleted (default 0.3)",
    )

    sub.add_parser("installations", parents=[common], help="list installations with status and health")

    p = sub.add_parser("test", parents=[common], help="test an installation's connection, per capability")
    p.add_argument("installation", help="installation id or name")

    p = sub.add_parser("sync", parents=[common], help="run a sync job now")
    p.add_argument("installations", nargs="*", metavar="INSTALLATION", help="installation ids or names")
    p.add_argument("--all", action="store_true", help="sync every enabled installation")
    p.add_argument("--full", action="store_true", help="ignore cursors: fetch everything")

    p = sub.add_parser("jobs", parents=[common], help="sync job history")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--installation", help="only this installation")

    p = sub.add_parser("logs", parents=[common], help="the activity (audit) log")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument(
        "--verify", action="store_true", help="verify the hash chain and name the first broken entry"
    )

    p = sub.add_parser("uninstall", parents=[common], help="remove an installation and its secrets")
    p.add_argument("installation")
    p.add_argument("--purge-data", action="store_true", help="also delete the rows it synced")

    p = sub.add_parser("enable", parents=[common], help="enable an installation")
    p.add_argument("installation")
    p = sub.add_parser("disable", parents=[common], help="disable an installation (no syncs run)")
    p.add_argument("installation")

    p = sub.add_parser("simulate", parents=[common], help="run the vendor simulators in the foreground")
    p.add_argument("--size", choices=["tiny", "small", "large"], default="small")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--port-base", type=int, default=0, help="first port (default: free ports)")

    p = sub.add_parser(
        "demo", parents=[common], help="simulators + demo database + installs + sync + dashboard"
    )
    p.add_argument("--port", type=int, default=8501, help="dashboard port")
    p.add_argument("--no-dashboard", action="store_true", help="stop after the first sync")
    p.add_argument("--size", choices=["tiny", "small"], default="small")

    p = sub.add_parser("dashboard", parents=[common], help="start the Streamlit dashboard")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1")

    p = sub.add_parser("schedule", parents=[common], help="run due syncs by schedule; or set one")
    p.add_argument("--once", action="store_true", help="run what is due and exit (for cron)")
    p.add_argument("--poll", type=float, default=30.0, help="seconds between checks (default 30)")
    schedule_sub = p.add_subparsers(dest="schedule_command", parser_class=_Parser)
    s = schedule_sub.add_parser("set", parents=[common], help="set an installation's schedule")
    s.add_argument("installation")
    group = s.add_mutually_exclusive_group(required=True)
    group.add_argument("--every", metavar="INTERVAL", help="e.g. 6h, 30m, 1d")
    group.add_argument("--cron", metavar="EXPR", help='e.g. "0 */6 * * *"')
    group.add_argument("--off", action="store_true", help="remove the schedule")

    sub.add_parser("doctor", parents=[common], help="check database, vault, allowed hosts and versions")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(json_mode=args.json)
    try:
        return int(commands.dispatch(args, out) or 0)
    except (UsageError, PermissionDeniedError) as exc:
        out.error(str(exc))
        return EXIT_USAGE
    except AlreadyRunningError as exc:
        out.error(str(exc))
        return EXIT_FAILED
    except (StoreError, VaultError) as exc:
        out.error(str(exc))
        return EXIT_FAILED if not isinstance(exc, UsageError) else EXIT_USAGE
    except AriaSyncError as exc:
        out.error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        out.error("interrupted")
        return 130


def read_config_file(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise UsageError(f"cannot read config file {path!r}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"config file {path!r} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {path!r} must hold a JSON object of config keys")
    return data
