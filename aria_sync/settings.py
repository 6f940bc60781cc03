"""Process settings from the environment (DESIGN.md "Environment"), read fresh on every call."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from aria_sync.errors import UsageError

DEFAULT_DB = Path("data") / "aria.duckdb"
DEFAULT_ORG = "default"
_ORG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Settings:
    db_path: Path
    org: str
    allowed_hosts: str
    master_key: str | None

    @property
    def data_dir(self) -> Path:
        return self.db_path.parent


def validate_org(org: str) -> str:
    """Organisation ids end up inside SQL view definitions, so only a safe alphabet is accepted."""
    if not isinstance(org, str) or not _ORG_PATTERN.match(org):
        raise UsageError(
            f"invalid organisation id {org!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return org


def get_settings(db: str | os.PathLike[str] | None = None, org: str | None = None) -> Settings:
    """Explicit arguments win over ARIA_SYNC_DB / ARIA_SYNC_ORG, which win over the defaults."""
    db_path = Path(db or os.environ.get("ARIA_SYNC_DB") or DEFAULT_DB).expanduser()
    return Settings(
        db_path=db_path,
        org=validate_org(org or os.environ.get("ARIA_SYNC_ORG") or DEFAULT_ORG),
        allowed_hosts=os.environ.get("ARIA_SYNC_ALLOWED_HOSTS", ""),
        master_key=os.environ.get("ARIA_SYNC_MASTER_KEY") or None,
    )
