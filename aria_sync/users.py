"""Built-in dashboard users: names, roles and organisations in a JSON file beside the database.

Passwords are stored only as salted scrypt hashes (``hashlib.scrypt``); PBKDF2-SHA256 hashes are
accepted too, for files written where OpenSSL lacks scrypt. The file is written atomically with
mode 0600. When it exists, the dashboard asks people to sign in; otherwise it runs in local
single-user mode.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aria_sync.audit import Actor
from aria_sync.errors import ConflictError, NotFoundError, UsageError
from aria_sync.marketplace import ROLE_RANK
from aria_sync.settings import get_settings, validate_org

USERS_FILE = "users.json"
ROLES = tuple(ROLE_RANK)
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_PBKDF2_ITERATIONS = 600_000
_MIN_PASSWORD = 8


@dataclass(frozen=True)
class User:
    """A dashboard user; never carries the password or its hash outside this module."""

    name: str
    role: str
    org: str

    @property
    def actor(self) -> Actor:
        return Actor(name=f"user:{self.name}", role=self.role)


def users_path(db_path: Path | str | None = None) -> Path:
    """The users file that belongs to a database (default: the configured one)."""
    db_file = Path(db_path) if db_path is not None else get_settings().db_path
    return db_file.expanduser().resolve().parent / USERS_FILE


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str) -> str:
    """A self-describing salted hash: ``scrypt$n$r$p$salt$digest`` (or pbkdf2 without scrypt)."""
    salt = secrets.token_bytes(16)
    try:
        digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
        return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${_b64(salt)}${_b64(digest)}"
    except (AttributeError, ValueError):
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _PBKDF2_ITERATIONS)
        return f"pbkdf2_sha256${_PBKDF2_ITERATIONS}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """Constant-time comparison against a stored hash; unknown formats never match."""
    parts = stored.split("$")
    try:
        if parts[0] == "scrypt" and len(parts) == 6:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            salt, expected = base64.b64decode(parts[4]), base64.b64decode(parts[5])
            actual = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected))
        elif parts[0] == "pbkdf2_sha256" and len(parts) == 4:
            salt, expected = base64.b64decode(parts[2]), base64.b64decode(parts[3])
            actual = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, int(parts[1]), len(expected))
        else:
            return False
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


# Checked for unknown names so a wrong name costs as long as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


class UserStore:
    """The users file of one database."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else users_path()

    def exists(self) -> bool:
        return self.path.is_file()

    def _load(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the users file {self.path}: {type(exc).__name__}") from None
        users = data.get("users", []) if isinstance(data, dict) else []
        return [u for u in users if isinstance(u, dict) and isinstance(u.get("name"), str)]

    def _save(self, users: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".users-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"users": users}, handle, indent=2, sort_keys=True)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def users(self) -> list[User]:
        return [
            User(u["name"], str(u.get("role", "viewer")), str(u.get("org", "default"))) for u in self._load()
        ]

    def get(self, name: str) -> User | None:
        return next((u for u in self.users() if u.name == name), None)

    def add_user(self, name: str, password: str, role: str = "viewer", org: str = "default") -> User:
        """Add a user; refuses duplicates, unknown roles and passwords under 8 characters."""
        name = name.strip()
        if not name or any(c.isspace() for c in name):
            raise UsageError("a user name must be non-empty and contain no spaces")
        if role not in ROLES:
            raise UsageError(f"unknown role {role!r}; valid roles: {', '.join(ROLES)}")
        if len(password) < _MIN_PASSWORD:
            raise UsageError(f"a password needs at least {_MIN_PASSWORD} characters")
        validate_org(org)
        users = self._load()
        if any(u["name"] == name for u in users):
            raise ConflictError(f"a user named {name!r} already exists")
        users.append({"name": name, "role": role, "org": org, "password_hash": hash_password(password)})
        self._save(users)
        return User(name, role, org)

    def set_password(self, name: str, password: str) -> None:
        if len(password) < _MIN_PASSWORD:
            raise UsageError(f"a password needs at least {_MIN_PASSWORD} characters")
        users = self._load()
        for user in users:
            if user["name"] == name:
                user["password_hash"] = hash_password(password)
                self._save(users)
                return
        raise NotFoundError(f"no user named {name!r}")

    def remove_user(self, name: str) -> None:
        users = self._load()
        kept = [u for u in users if u["name"] != name]
        if len(kept) == len(users):
            raise NotFoundError(f"no user named {name!r}")
        self._save(kept)

    def verify(self, name: str, password: str) -> User | None:
        """The user if the password matches, else None (same cost for unknown names)."""
        record = next((u for u in self._load() if u["name"] == name), None)
        if record is None:
            check_password(password, _DUMMY_HASH)
            return None
        if not check_password(password, str(record.get("password_hash", ""))):
            return None
        role = str(record.get("role", "viewer"))
        return User(
            name, role if role in ROLES else "viewer", validate_org(str(record.get("org", "default")))
        )


def authenticate(name: str, password: str, path: Path | str | None = None) -> Actor | None:
    """The signed-in actor for a name and password, or None."""
    user = UserStore(path).verify(name, password)
    return user.actor if user else None


def add_user(
    name: str, password: str, role: str = "viewer", org: str = "default", path: Path | str | None = None
) -> User:
    """Add a user to the users file of ``path`` (default: beside the configured database)."""
    return UserStore(path).add_user(name, password, role=role, org=org)
