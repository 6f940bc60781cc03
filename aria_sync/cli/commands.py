"""One function per CLI command; each calls the library and renders the result."""

from __future__ import annotations

import argparse
import json
import platform
import signal
import threading
from typing import Any

from aria_sync import __version__
from aria_sync.audit import Actor, verify_rows
from aria_sync.catalog import catalog
from aria_sync.cli.output import Output
from aria_sync.errors import AlreadyRunningError, AriaSyncError, UsageError
from aria_sync.marketplace import Marketplace
from aria_sync.settings import get_settings
from aria_sync.store import Database, OrgScope, schema_version

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PARTIAL = 0, 1, 2, 3
_STATUS_EXIT = {"succeeded": EXIT_OK, "partial": EXIT_PARTIAL}


def _context(args: argparse.Namespace) -> tuple[Database, str]:
    settings = get_settings(db=args.db, org=args.org)
    return Database(settings.db_path), settings.org


def dispatch(args: argparse.Namespace, out: Output) -> int:
    handler = COMMANDS[args.command]
    return handler(args, out)


def cmd_catalog(args: argparse.Namespace, out: Output) -> int:
    entries = catalog()
    installed: set[str] = set()
    if args.db or get_settings().db_path.exists():
        db, org = _context(args)
        installed = {i.integration_key for i in Marketplace(db, org).installations()}
    if out.json_mode:
        out.emit_json([{**e.as_dict(), "installed": e.key in installed} for e in entries])
        return EXIT_OK
    out.table(
        ["key", "name", "category", "auth", "capabilities", "config", "status"],
        [
            (
                e.key,
                e.name + (" (installed)" if e.key in installed else ""),
                e.category,
                e.auth_type,
                ", ".join(c["name"] for c in e.capabilities),
                ", ".join(
                    f.name + ("*" if f.secret else "") + ("" if f.required else "?") for f in e.config_fields
                ),
                e.status.replace("_", " "),
            )
            for e in entries
        ],
        title="Integration catalogue (* secret, ? optional)",
    )
    return EXIT_OK


def cmd_install(args: argparse.Namespace, out: Output) -> int:
    from aria_sync.cli.main import read_config_file

    db, org = _context(args)
    config = read_config_file(args.config)
    options: dict[str, Any] = {}
    if args.max_stale_fraction is not None:
        if not 0 < args.max_stale_fraction <= 1:
            raise UsageError("--max-stale-fraction must be in (0, 1]")
        options["max_stale_fraction"] = args.max_stale_fraction
    market = Marketplace(db, org)
    installation, report = market.install(
        args.key, args.name, config, test=not args.no_test, schedule=args.schedule, options=options
    )
    if out.json_mode:
        out.emit_json(
            {
                "installation_id": installation.installation_id,
                "name": installation.name,
                "integration": installation.integration_key,
                "test": report.as_dict() if report else None,
            }
        )
    else:
        if report:
            for result in report.results:
                out.info(f"  {'ok  ' if result.ok else 'FAIL'} {result.capability}: {result.message}")
        out.info(installation.installation_id)
    return EXIT_OK


def cmd_installations(args: argparse.Namespace, out: Output) -> int:
    from aria_sync.health import installation_health

    db, org = _context(args)
    health = installation_health(db, org)
    if out.json_mode:
        out.emit_json(health)
        return EXIT_OK
    out.table(
        [
            "id",
            "name",
            "integration",
            "status",
            "enabled",
            "schedule",
            "last sync",
            "result",
            "health",
            "last error",
        ],
        [
            (
                h["installation_id"][:8],
                h["name"],
                h["integration_key"],
                h["status"],
                h["enabled"],
                h["schedule"] or "",
                h["last_sync_at"],
                h["last_sync_status"] or "",
                h["health"],
                h["last_error"] or "",
            )
            for h in health
        ],
        title=f"Installations of {org}",
    )
    return EXIT_OK


def cmd_test(args: argparse.Namespace, out: Output) -> int:
    db, org = _context(args)
    report = Marketplace(db, org).test(args.installation)
    if out.json_mode:
        out.emit_json(report.as_dict())
    else:
        for result in report.results:
            out.info(f"{'ok  ' if result.ok else 'FAIL'} {result.capability}: {result.message}")
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_sync(args: argparse.Namespace, out: Output) -> int:
    from aria_sync.sync.engine import Progress, SyncRunner

    db, org = _context(args)
    market = Marketplace(db, org)
    if args.all and args.installations:
        raise UsageError("give installation names or --all, not both")
    if args.all:
        targets = [i.installation_id for i in market.installations() if i.enabled]
        if not targets:
            raise UsageError(f"no enabled installations in organisation {org!r}")
    elif args.installations:
        targets = [market.get(ref).installation_id for ref in args.installations]
    else:
        raise UsageError("name at least one installation, or pass --all")
    runner = SyncRunner(db, org, market.actor, marketplace=market)
    results: list[dict[str, Any]] = []
    codes: list[int] = []
    for ref in targets:
        installation = market.get(ref)
        with out.progress(installation.name) as update:

            def on_progress(p: Progress, update: Any = update) -> None:
                if update:
                    detail = f"{p.stream or ''} {p.phase} {p.records} records".strip()
                    update(p.fraction, detail)

            try:
                result = runner.sync(ref, full=args.full, trigger="manual", on_progress=on_progress)
            except AlreadyRunningError as exc:
                out.error(str(exc))
                results.append(
                    {
                        "job_id": None,
                        "installation": installation.name,
                        "status": "skipped",
                        "streams": {},
                        "error": str(exc),
                    }
                )
                codes.append(EXIT_FAILED)
                continue
        payload = result.as_json()
        results.append(payload)
        codes.append(_STATUS_EXIT.get(result.status, EXIT_FAILED))
        if not out.json_mode:
            out.info(
                f"{installation.name}: {result.status} in {result.duration_seconds:.1f}s (job {result.job_id})"
            )
            for name, counts in payload["streams"].items():
                out.info("  " + name + ": " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            if result.error:
                out.info(f"  error: {result.error}")
    if out.json_mode:
        out.emit_json(results[0] if len(results) == 1 else results)
    if EXIT_FAILED in codes:
        return EXIT_FAILED
    if EXIT_PARTIAL in codes:
        return EXIT_PARTIAL
    return EXIT_OK


def cmd_jobs(args: argparse.Namespace, out: Output) -> int:
    db, org = _context(args)
    params: list[Any] = []
    where = ""
    if args.installation:
        installation = Marketplace(db, org).get(args.installation)
        where, params = "WHERE installation_id = ?", [installation.installation_id]
    with OrgScope(db, org).read() as conn:
        rows = conn.rows(
            f"SELECT job_id, installation_name, trigger, status, started_at, finished_at, duration_seconds, "
            f"streams, error FROM integration_sync_jobs {where} ORDER BY started_at DESC LIMIT ?",
            [*params, args.limit],
        )
    for row in rows:
        row["streams"] = json.loads(row["streams"] or "{}")
    if out.json_mode:
        out.emit_json(rows)
        return EXIT_OK
    out.table(
        ["job", "installation", "trigger", "status", "started", "seconds", "records", "error"],
        [
            (
                r["job_id"][:8],
                r["installation_name"],
                r["trigger"],
                r["status"],
                r["started_at"],
                f"{r['duration_seconds']:.1f}" if r["duration_seconds"] is not None else "",
                sum(int(c.get("fetched") or 0) for c in r["streams"].values()),
                r["error"] or "",
            )
            for r in rows
        ],
        title="Sync jobs",
    )
    return EXIT_OK


def cmd_logs(args: argparse.Namespace, out: Output) -> int:
    db, org = _context(args)
    with OrgScope(db, org).read() as conn:
        if args.verify:
            rows = conn.rows("SELECT * FROM integration_activity_logs ORDER BY seq")
        else:
            rows = conn.rows(
                "SELECT seq, occurred_at, actor, action, target_type, target_id, outcome, details "
                "FROM integration_activity_logs ORDER BY seq DESC LIMIT ?",
                [args.limit],
            )
    if args.verify:
        check = verify_rows(org, rows)
        payload = {
            "ok": check.ok,
            "checked": check.checked,
            "first_broken_seq": check.first_broken_seq,
            "reason": check.reason,
        }
        if out.json_mode:
            out.emit_json(payload)
        elif check.ok:
            out.info(f"activity log intact: {check.checked} entries verified")
        else:
            out.info(f"activity log BROKEN at entry {check.first_broken_seq}: {check.reason}")
        return EXIT_OK if check.ok else EXIT_FAILED
    if out.json_mode:
        out.emit_json(rows)
        return EXIT_OK
    out.table(
        ["#", "when", "actor", "action", "target", "outcome"],
        [
            (
                r["seq"],
                r["occurred_at"],
                r["actor"],
                r["action"],
                f"{r['target_type'] or ''} {r['target_id'] or ''}",
                r["outcome"],
            )
            for r in rows
        ],
        title="Activity log",
    )
    return EXIT_OK


def cmd_uninstall(args: argparse.Namespace, out: Output) -> int:
    db, org = _context(args)
    installation = Marketplace(db, org).uninstall(args.installation, purge_data=args.purge_data)
    if out.json_mode:
        out.emit_json(
            {
                "uninstalled": installation.installation_id,
                "name": installation.name,
                "purged": args.purge_data,
            }
        )
    else:
        out.info(
            f"uninstalled {installation.name} ({installation.installation_id})"
            + (" and deleted its data" if args.purge_data else "")
        )
    return EXIT_OK


def _set_enabled(args: argparse.Namespace, out: Output, enabled: bool) -> int:
    db, org = _context(args)
    installation = Marketplace(db, org).set_enabled(args.installation, enabled)
    if out.json_mode:
        out.emit_json({"installation_id": installation.installation_id, "enabled": installation.enabled})
    else:
        out.info(f"{installation.name}: {'enabled' if enabled else 'disabled'}")
    return EXIT_OK


def cmd_schedule(args: argparse.Namespace, out: Output) -> int:
    from aria_sync.schedule import ScheduledRun, run_due, run_forever

    db, org = _context(args)
    if args.schedule_command == "set":
        schedule = None if args.off else (args.every or args.cron)
        installation = Marketplace(db, org).set_schedule(args.installation, schedule)
        payload = {
            "installation_id": installation.installation_id,
            "schedule_kind": installation.schedule_kind,
            "schedule": installation.schedule_expr,
            "next_run_at": installation.next_run_at,
        }
        if out.json_mode:
            out.emit_json(payload)
        else:
            out.info(
                f"{installation.name}: schedule {installation.schedule_expr or 'off'}"
                + (
                    f", next run {installation.next_run_at:%Y-%m-%d %H:%M} UTC"
                    if installation.next_run_at
                    else ""
                )
            )
        return EXIT_OK
    if args.once:
        runs = run_due(db, orgs=[org] if args.org else None)
        if out.json_mode:
            out.emit_json([run.__dict__ for run in runs])
        else:
            for run in runs:
                out.info(f"{run.org}/{run.installation}: {run.status} {run.detail}")
            if not runs:
                out.info("nothing due")
        return EXIT_FAILED if any(r.status == "failed" for r in runs) else EXIT_OK
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    out.info(f"scheduler running on {db.path}; Ctrl-C to stop")

    def report(run: ScheduledRun) -> None:
        out.info(f"{run.org}/{run.installation}: {run.status} {run.detail}")

    try:
        run_forever(db, stop=stop, poll_seconds=args.poll, on_run=report)
    except KeyboardInterrupt:
        stop.set()
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace, out: Output) -> int:
    import duckdb
    import httpx
    import msal
    import pydantic

    from aria_sync.http import AllowList
    from aria_sync.vault import open_vault

    settings = get_settings(db=args.db, org=args.org)
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": ok, "detail": detail})

    db = Database(settings.db_path)
    try:
        version = schema_version(db)
        check("database", True, f"{db.path} (schema v{version})")
    except AriaSyncError as exc:
        check("database", False, str(exc))
    try:
        vault = open_vault(settings.data_dir)
        check("vault", True, vault.backend_name)
    except AriaSyncError as exc:
        check("vault", False, str(exc))
    allowed = AllowList.from_env()
    check("allowed hosts", True, settings.allowed_hosts or "none (only public https hosts)")
    del allowed
    check(
        "versions",
        True,
        f"aria_sync {__version__}, python {platform.python_version()}, duckdb "
        f"{duckdb.__version__}, httpx {httpx.__version__}, msal {msal.__version__}, pydantic {pydantic.VERSION}",
    )
    if out.json_mode:
        out.emit_json({"ok": all(c["ok"] for c in checks), "checks": checks})
    else:
        for c in checks:
            out.info(f"{'ok  ' if c['ok'] else 'FAIL'} {c['check']}: {c['detail']}")
    return EXIT_OK if all(c["ok"] for c in checks) else EXIT_FAILED


def cmd_simulate(args: argparse.Namespace, out: Output) -> int:
    from aria_sync.simulators.run import run_simulators

    return run_simulators(size=args.size, seed=args.seed, port_base=args.port_base, out=out)


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from aria_sync.demo import run_demo

    settings = get_settings(db=args.db, org=args.org)
    return run_demo(settings, port=args.port, dashboard=not args.no_dashboard, size=args.size, out=out)


def cmd_dashboard(args: argparse.Namespace, out: Output) -> int:
    from aria_sync.dashboard_launcher import run_dashboard

    settings = get_settings(db=args.db, org=args.org)
    return run_dashboard(settings, port=args.port, address=args.address, out=out)


COMMANDS = {
    "catalog": cmd_catalog,
    "install": cmd_install,
    "installations": cmd_installations,
    "test": cmd_test,
    "sync": cmd_sync,
    "jobs": cmd_jobs,
    "logs": cmd_logs,
    "uninstall": cmd_uninstall,
    "enable": lambda a, o: _set_enabled(a, o, True),
    "disable": lambda a, o: _set_enabled(a, o, False),
    "schedule": cmd_schedule,
    "doctor": cmd_doctor,
    "simulate": cmd_simulate,
    "demo": cmd_demo,
    "dashboard": cmd_dashboard,
}

__all__ = ["COMMANDS", "Actor", "dispatch"]
