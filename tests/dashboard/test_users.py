"""Built-in users: hashed passwords, roles, organisations, a private file."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from aria_sync.audit import Actor
from aria_sync.errors import ConflictError, UsageError
from aria_sync.users import UserStore, add_user, authenticate, check_password, hash_password, users_path


def test_users_file_lives_beside_the_database(tmp_path: Path) -> None:
    assert users_path(tmp_path / "data" / "aria.duckdb") == (tmp_path / "data" / "users.json").resolve()


def test_authenticate_returns_the_actor_with_its_role(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    add_user("alice", "s3cret-passphrase", role="analyst", org="acme", path=path)
    assert authenticate("alice", "s3cret-passphrase", path) == Actor("user:alice", "analyst")
    assert authenticate("alice", "wrong-passphrase", path) is None
    assert authenticate("mallory", "s3cret-passphrase", path) is None
    user = UserStore(path).verify("alice", "s3cret-passphrase")
    assert user is not None and user.org == "acme"


def test_the_file_holds_salted_hashes_only_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    add_user("alice", "same-password", path=path)
    add_user("bob", "same-password", path=path)
    text = path.read_text()
    assert "same-password" not in text
    hashes = [u["password_hash"] for u in json.loads(text)["users"]]
    assert hashes[0] != hashes[1] and all(h.startswith("scrypt$") for h in hashes)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_pbkdf2_hashes_are_accepted_and_unknown_formats_refused() -> None:
    import base64
    import hashlib

    salt = b"0123456789abcdef"
    digest = hashlib.pbkdf2_hmac("sha256", b"pw-for-pbkdf2", salt, 1000)
    stored = f"pbkdf2_sha256$1000${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    assert check_password("pw-for-pbkdf2", stored)
    assert not check_password("other", stored)
    assert not check_password("pw-for-pbkdf2", "md5$abc")
    assert check_password("x" * 9, hash_password("x" * 9))


def test_bad_users_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    add_user("alice", "long-enough", path=path)
    with pytest.raises(ConflictError):
        add_user("alice", "long-enough", path=path)
    with pytest.raises(UsageError, match="role"):
        add_user("bob", "long-enough", role="root", path=path)
    with pytest.raises(UsageError, match="8 characters"):
        add_user("bob", "short", path=path)
    with pytest.raises(UsageError, match="organisation"):
        add_user("bob", "long-enough", org="a'b", path=path)


def test_removed_user_and_new_password(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    store.add_user("alice", "first-password", role="admin")
    store.set_password("alice", "second-password")
    assert store.verify("alice", "first-password") is None
    assert store.verify("alice", "second-password") is not None
    store.remove_user("alice")
    assert store.users() == []
