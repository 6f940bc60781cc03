"""The credential vault: backends, key handling (C16) and secrets at rest (C14, C15)."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.backends.null
import keyring.errors
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from aria_sync.errors import ConfigurationError, VaultError, VaultLockedError
from aria_sync.vault import (
    KEY_FILE_NAME,
    MASTER_KEY_ENV,
    SECRET_MASK,
    VAULT_BACKEND_ENV,
    VAULT_FILE_NAME,
    EncryptedFileVault,
    KeyringVault,
    MissingSecretError,
    mask_secret,
    open_vault,
)

CANARY = "Canary-Vault~S3cret.77"
SECRETS = {"clientSecret": CANARY, "accessKey": "AccessCanary9876543210"}


class MemoryKeyring(keyring.backend.KeyringBackend):
    """An in-memory keyring that really stores what it is given."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.entries:
            raise keyring.errors.PasswordDeleteError(username)
        del self.entries[(service, username)]


class ForgetfulKeyring(MemoryKeyring):
    """Claims success but keeps nothing, like a misconfigured backend."""

    def set_password(self, service: str, username: str, password: str) -> None:
        pass


PlaintextLookalike = type("PlaintextKeyring", (MemoryKeyring,), {"__module__": "keyrings.alt.file"})


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (MASTER_KEY_ENV, VAULT_BACKEND_ENV):
        monkeypatch.delenv(name, raising=False)
    previous = keyring.get_keyring()
    yield
    keyring.set_keyring(previous)


def secret_forms(secret: str) -> list[bytes]:
    raw = secret.encode()
    return [
        raw,
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw),
        quote(secret, safe="").encode(),
        raw.hex().encode(),
    ]


def assert_no_plaintext(path: Path) -> None:
    content = path.read_bytes()
    for secret in SECRETS.values():
        for form in secret_forms(secret):
            assert form not in content


# -- encrypted file vault ------------------------------------------------------------------


def test_file_vault_round_trip_without_plaintext_at_rest(tmp_path: Path) -> None:
    vault = EncryptedFileVault(tmp_path / VAULT_FILE_NAME, Fernet.generate_key())
    vault.put("inst-1", SECRETS)
    vault.put("inst-2", {"password": "other"})
    got = vault.get("inst-1")
    assert all(isinstance(value, SecretStr) for value in got.values())
    assert {name: value.get_secret_value() for name, value in got.items()} == SECRETS
    assert vault.refs() == ["inst-1", "inst-2"]
    path = tmp_path / VAULT_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert_no_plaintext(path)
    assert [
        p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")
    ] == []  # atomic writes leave nothing
    vault.delete("inst-1")
    vault.delete("inst-1")  # deleting twice is fine
    with pytest.raises(MissingSecretError, match="inst-1"):
        vault.get("inst-1")
    assert isinstance(MissingSecretError("x"), VaultError)


def test_secrets_never_appear_in_repr_or_str(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    vault = EncryptedFileVault(tmp_path / VAULT_FILE_NAME, key)
    vault.put("inst-1", SECRETS)
    got = vault.get("inst-1")
    for text in (repr(vault), str(vault), repr(got), str(got), vault.backend_name):
        assert CANARY not in text
        assert key.decode() not in text
    assert mask_secret(CANARY) == SECRET_MASK
    assert mask_secret(SecretStr(CANARY)) == SECRET_MASK
    assert mask_secret("x") == mask_secret("a much longer secret value")  # no length or prefix revealed
    assert mask_secret("") == "" and mask_secret(None) == ""


def test_wrong_key_locks_the_vault_without_overwriting(tmp_path: Path) -> None:
    path = tmp_path / VAULT_FILE_NAME
    EncryptedFileVault(path, Fernet.generate_key()).put("inst-1", SECRETS)
    before = path.read_bytes()
    wrong = EncryptedFileVault(path, Fernet.generate_key())
    assert wrong.locked
    for operation in (
        lambda: wrong.get("inst-1"),
        lambda: wrong.put("inst-2", {"password": "x"}),
        lambda: wrong.delete("inst-1"),
        lambda: wrong.rotate_key(Fernet.generate_key()),
    ):
        with pytest.raises(VaultLockedError, match=MASTER_KEY_ENV):
            operation()
    assert path.read_bytes() == before


def test_passphrase_is_stretched_with_a_stored_salt(tmp_path: Path) -> None:
    path = tmp_path / VAULT_FILE_NAME
    EncryptedFileVault(path, "correct horse battery staple").put("inst-1", SECRETS)
    document = json.loads(path.read_text())
    assert document["kdf"]["name"] == "scrypt"
    assert len(base64.b64decode(document["kdf"]["salt"])) == 16
    assert "correct horse" not in path.read_text()
    again = EncryptedFileVault(path, "correct horse battery staple")
    assert again.get("inst-1")["clientSecret"].get_secret_value() == CANARY
    assert EncryptedFileVault(path, "wrong horse").locked


def test_rotate_key_reencrypts_every_entry(tmp_path: Path) -> None:
    path = tmp_path / VAULT_FILE_NAME
    old_key, new_key = Fernet.generate_key(), Fernet.generate_key()
    vault = EncryptedFileVault(path, old_key)
    vault.put("inst-1", SECRETS)
    vault.put("inst-2", {"password": "pw-two"})
    old_tokens = json.loads(path.read_text())["entries"]
    old_id = vault.key_id
    vault.rotate_key(new_key)
    document = json.loads(path.read_text())
    assert document["key_id"] == vault.key_id != old_id
    assert all(document["entries"][ref] != old_tokens[ref] for ref in old_tokens)
    assert EncryptedFileVault(path, old_key).locked  # the old key no longer decrypts
    for token in document["entries"].values():
        with pytest.raises(Exception):  # noqa: B017 - InvalidToken: old key cannot read new tokens
            Fernet(old_key).decrypt(token.encode())
    reopened = EncryptedFileVault(path, new_key)
    assert reopened.get("inst-2")["password"].get_secret_value() == "pw-two"
    assert_no_plaintext(path)


def test_corrupt_vault_file_is_locked_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / VAULT_FILE_NAME
    path.write_text("{ not json")
    vault = EncryptedFileVault(path, Fernet.generate_key())
    assert vault.locked
    with pytest.raises(VaultLockedError, match="backup"):
        vault.get("x")
    assert path.read_text() == "{ not json"


# -- open_vault ----------------------------------------------------------------------------


def test_open_vault_generates_a_private_key_file_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAULT_BACKEND_ENV, "file")
    vault = open_vault(tmp_path / "data")
    assert vault.backend_name == f"encrypted-file:{tmp_path / 'data' / VAULT_FILE_NAME}"
    vault.put("inst-1", SECRETS)
    key_file = tmp_path / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_bytes()
    reopened = open_vault(tmp_path / "data")
    assert key_file.read_bytes() == key
    assert reopened.get("inst-1")["clientSecret"].get_secret_value() == CANARY


def test_vault_moved_without_its_key_is_locked_with_advice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAULT_BACKEND_ENV, "file")
    open_vault(tmp_path).put("inst-1", SECRETS)
    (tmp_path / KEY_FILE_NAME).unlink()  # e.g. the data folder was copied to another machine
    before = (tmp_path / VAULT_FILE_NAME).read_bytes()
    vault = open_vault(tmp_path)
    with pytest.raises(VaultLockedError, match=f"set {MASTER_KEY_ENV} to the key used before"):
        vault.get("inst-1")
    with pytest.raises(VaultLockedError):
        vault.put("inst-1", {"password": "overwrite attempt"})
    assert not (tmp_path / KEY_FILE_NAME).exists()  # no new key was minted for the old vault
    assert (tmp_path / VAULT_FILE_NAME).read_bytes() == before


def test_master_key_env_wins_and_a_wrong_one_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VAULT_BACKEND_ENV, "file")
    key = Fernet.generate_key().decode()
    monkeypatch.setenv(MASTER_KEY_ENV, key)
    open_vault(tmp_path).put("inst-1", SECRETS)
    assert not (tmp_path / KEY_FILE_NAME).exists()
    assert open_vault(tmp_path).get("inst-1")["accessKey"].get_secret_value() == SECRETS["accessKey"]
    monkeypatch.setenv(MASTER_KEY_ENV, Fernet.generate_key().decode())
    with pytest.raises(VaultLockedError, match=MASTER_KEY_ENV) as locked:
        open_vault(tmp_path).get("inst-1")
    assert key not in str(locked.value)


def test_rotation_through_open_vault_updates_the_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(VAULT_BACKEND_ENV, "file")
    vault = open_vault(tmp_path)
    assert isinstance(vault, EncryptedFileVault)
    vault.put("inst-1", SECRETS)
    new_key = Fernet.generate_key()
    vault.rotate_key(new_key)
    assert (tmp_path / KEY_FILE_NAME).read_bytes() == new_key
    assert not (tmp_path / (KEY_FILE_NAME + ".new")).exists()
    assert open_vault(tmp_path).get("inst-1")["clientSecret"].get_secret_value() == CANARY


def test_interrupted_rotation_is_finished_on_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VAULT_BACKEND_ENV, "file")
    vault = open_vault(tmp_path)
    assert isinstance(vault, EncryptedFileVault)
    vault.put("inst-1", SECRETS)
    old_key = (tmp_path / KEY_FILE_NAME).read_bytes()
    new_key = Fernet.generate_key()
    vault.rotate_key(new_key)
    # Simulate a crash after the vault was replaced but before the key file was.
    os.rename(tmp_path / KEY_FILE_NAME, tmp_path / (KEY_FILE_NAME + ".new"))
    (tmp_path / KEY_FILE_NAME).write_bytes(old_key)
    reopened = open_vault(tmp_path)
    assert reopened.get("inst-1")["clientSecret"].get_secret_value() == CANARY
    assert (tmp_path / KEY_FILE_NAME).read_bytes() == new_key


def test_open_vault_uses_a_real_keyring(tmp_path: Path) -> None:
    memory = MemoryKeyring()
    keyring.set_keyring(memory)
    vault = open_vault(tmp_path)
    assert isinstance(vault, KeyringVault)
    assert vault.backend_name.startswith("keyring:") and "MemoryKeyring" in vault.backend_name
    vault.put("inst-1", SECRETS)
    assert json.loads(memory.entries[("aria-sync", "inst-1")]) == SECRETS  # one JSON entry per ref
    assert len(memory.entries) == 1  # the probe cleaned up after itself
    assert vault.get("inst-1")["clientSecret"].get_secret_value() == CANARY
    vault.delete("inst-1")
    with pytest.raises(MissingSecretError):
        vault.get("inst-1")
    assert not (tmp_path / VAULT_FILE_NAME).exists()


@pytest.mark.parametrize(
    "backend",
    [
        keyring.backends.fail.Keyring(),
        keyring.backends.null.Keyring(),
        ForgetfulKeyring(),
        PlaintextLookalike(),
    ],
    ids=["fail", "null", "forgetful", "keyrings.alt"],
)
def test_unusable_keyrings_fall_back_to_the_file(
    tmp_path: Path, backend: keyring.backend.KeyringBackend
) -> None:
    keyring.set_keyring(backend)
    vault = open_vault(tmp_path)
    assert isinstance(vault, EncryptedFileVault)
    vault.put("inst-1", SECRETS)
    assert vault.get("inst-1")["clientSecret"].get_secret_value() == CANARY


def test_empty_chainer_is_not_a_keyring(tmp_path: Path) -> None:
    from keyring.backends.chainer import ChainerBackend

    chainer = ChainerBackend()
    chainer.__dict__["backends"] = []
    keyring.set_keyring(chainer)
    assert isinstance(open_vault(tmp_path), EncryptedFileVault)


def test_existing_file_vault_is_kept_when_a_keyring_appears(tmp_path: Path) -> None:
    keyring.set_keyring(keyring.backends.null.Keyring())
    open_vault(tmp_path).put("inst-1", SECRETS)
    keyring.set_keyring(MemoryKeyring())
    vault = open_vault(tmp_path)
    assert isinstance(vault, EncryptedFileVault)
    assert vault.get("inst-1")["clientSecret"].get_secret_value() == CANARY


def test_forcing_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keyring.set_keyring(MemoryKeyring())
    monkeypatch.setenv(VAULT_BACKEND_ENV, "file")
    assert isinstance(open_vault(tmp_path), EncryptedFileVault)
    monkeypatch.setenv(VAULT_BACKEND_ENV, "keyring")
    assert isinstance(open_vault(tmp_path), KeyringVault)
    keyring.set_keyring(keyring.backends.null.Keyring())
    with pytest.raises(VaultError, match="no usable OS keyring"):
        open_vault(tmp_path)
    monkeypatch.setenv(VAULT_BACKEND_ENV, "vault9000")
    with pytest.raises(ConfigurationError, match=VAULT_BACKEND_ENV):
        open_vault(tmp_path)
