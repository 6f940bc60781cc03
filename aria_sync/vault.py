"""The credential vault: where installation secrets live, never in DuckDB.

Two backends:

* :class:`KeyringVault` uses the OS keyring, but only when its active backend really stores
  secrets (not the ``fail`` or ``null`` backends, an empty chainer, or the plaintext backends of
  ``keyrings.alt``), verified with a probe round trip.
* :class:`EncryptedFileVault` keeps Fernet tokens in ``vault.enc.json``. Its key is
  ``ARIA_SYNC_MASTER_KEY`` (a Fernet key, or a passphrase stretched with scrypt) or else a
  generated ``master.key`` beside it (mode 0600). A key file next to the ciphertext protects
  against casual reads and copied backups, not against someone using the same account.

A wrong or missing key never crashes and never overwrites: the vault reports itself locked and
every operation raises :class:`VaultLockedError` saying which key to provide.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets as secrets_module
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from aria_sync.errors import ConfigurationError, VaultError, VaultLockedError

try:  # POSIX only; elsewhere concurrent writers are not serialised.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

SERVICE_NAME = "aria-sync"
MASTER_KEY_ENV = "ARIA_SYNC_MASTER_KEY"
VAULT_BACKEND_ENV = "ARIA_SYNC_VAULT"
VAULT_FILE_NAME = "vault.enc.json"
KEY_FILE_NAME = "master.key"
SECRET_MASK = "********"  # nosec B105 # the mask shown instead of a secret

_FORMAT_VERSION = 1
# scrypt cost: ~32 MiB and well under a second on a small machine, once per process.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**15, 8, 1


class MissingSecretError(VaultError):
    """No secrets are stored under that reference."""


def mask_secret(value: object) -> str:
    """A fixed mask for a secret (never a partial reveal); empty when nothing is set."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return SECRET_MASK if str(value) else ""


class Vault(Protocol):
    """Stores one mapping of secret fields per reference (e.g. an installation id)."""

    backend_name: str

    def put(self, ref: str, secrets: Mapping[str, str]) -> None: ...

    def get(self, ref: str) -> dict[str, SecretStr]: ...

    def delete(self, ref: str) -> None: ...


def _plain(secrets: Mapping[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, value in secrets.items():
        values[str(name)] = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
    return values


def _wrapped(values: Mapping[str, Any]) -> dict[str, SecretStr]:
    return {str(name): SecretStr(str(value)) for name, value in values.items()}


# -- keyring ---------------------------------------------------------------------------------


def _backend_label(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_real_backend(backend: object) -> bool:
    module = type(backend).__module__
    if module.startswith(("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")):
        return False
    children = getattr(backend, "backends", None)
    if module.startswith("keyring.backends.chainer"):
        return bool(children) and all(_is_real_backend(child) for child in children or ())
    return True


def usable_keyring() -> Any | None:
    """The active keyring backend if it really stores secrets (checked by a probe), else None."""
    try:
        import keyring
        import keyring.errors
    except ImportError:  # pragma: no cover
        return None
    try:
        backend = keyring.get_keyring()
    except Exception:  # a broken keyring configuration means "no keyring", never a crash
        return None
    if not _is_real_backend(backend):
        return None
    probe_user = f"probe-{secrets_module.token_hex(8)}"
    probe_value = secrets_module.token_hex(16)
    try:
        backend.set_password(SERVICE_NAME, probe_user, probe_value)
        round_trip = backend.get_password(SERVICE_NAME, probe_user)
        backend.delete_password(SERVICE_NAME, probe_user)
    except Exception:  # locked collections, missing D-Bus, ...: all mean "not usable here"
        return None
    return backend if round_trip == probe_value else None


class KeyringVault:
    """Secrets in the OS keyring: service ``aria-sync``, one JSON entry per reference."""

    def __init__(self, backend: Any | None = None) -> None:
        import keyring

        self._backend = backend or keyring.get_keyring()
        self.backend_name = f"keyring:{_backend_label(self._backend)}"

    def put(self, ref: str, secrets: Mapping[str, str]) -> None:
        """Store (replace) the secrets of ``ref``."""
        try:
            self._backend.set_password(SERVICE_NAME, ref, json.dumps(_plain(secrets)))
        except Exception as exc:
            raise VaultError(
                f"the keyring refused to store secrets for {ref!r} ({exc.__class__.__name__})"
            ) from None

    def get(self, ref: str) -> dict[str, SecretStr]:
        """The secrets of ``ref``; :class:`MissingSecretError` if there are none."""
        try:
            stored = self._backend.get_password(SERVICE_NAME, ref)
        except Exception as exc:
            raise VaultLockedError(
                f"the keyring could not be read for {ref!r} ({exc.__class__.__name__}); unlock it and retry"
            ) from None
        if stored is None:
            raise MissingSecretError(f"no secrets are stored for {ref!r} in the {self.backend_name} vault")
        try:
            return _wrapped(json.loads(stored))
        except (ValueError, AttributeError):
            raise VaultError(f"the keyring entry for {ref!r} is not an aria-sync entry") from None

    def delete(self, ref: str) -> None:
        """Remove the secrets of ``ref`` (no error if there were none)."""
        import keyring.errors

        try:
            self._backend.delete_password(SERVICE_NAME, ref)
        except keyring.errors.PasswordDeleteError:
            pass
        except Exception as exc:
            raise VaultError(f"the keyring refused to delete {ref!r} ({exc.__class__.__name__})") from None

    def __repr__(self) -> str:
        return f"KeyringVault({self.backend_name!r})"


# -- encrypted file --------------------------------------------------------------------------


def _is_fernet_key(text: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(text.encode("ascii"))) == 32
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False


def _stretch(passphrase: str, salt: bytes) -> bytes:
    derived = hashlib.scrypt(
        passphrase.encode("utf-8"),
        salt=salt,
        n=_SCRYPT_N,
        r=_SCRYPT_R,
        p=_SCRYPT_P,
        maxmem=64 * 2**20,
        dklen=32,
    )
    return base64.urlsafe_b64encode(derived)


def _key_id(fernet_key: bytes) -> str:
    # Identifies a key without revealing it; it changes on rotation (shown by ``doctor``).
    return hmac.new(fernet_key, b"aria-sync vault key id", hashlib.sha256).hexdigest()[:16]


def _write_atomically(path: Path, payload: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets_module.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


class EncryptedFileVault:
    """Fernet-encrypted secrets in one JSON file, written atomically with mode 0600.

    ``master_key`` is a Fernet key or any passphrase (stretched with scrypt; the random salt is
    stored in the file). ``key_file``, when the key came from one, is rewritten by
    :meth:`rotate_key`.
    """

    def __init__(self, path: Path, master_key: str | bytes, *, key_file: Path | None = None) -> None:
        self.path = Path(path)
        self.key_file = key_file
        self.backend_name = f"encrypted-file:{self.path}"
        self._secret_key = master_key.decode("utf-8") if isinstance(master_key, bytes) else master_key
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self.locked_reason: str | None = None
        try:
            document = self._read()
        except VaultError as exc:
            document, self.locked_reason = None, str(exc)
        self._fernet_key, self._kdf = self._derive(
            self._secret_key, document.get("kdf") if document else None
        )
        if document and document.get("key_id") != _key_id(self._fernet_key):
            self.locked_reason = (
                f"the vault {self.path} was encrypted with another key; set {MASTER_KEY_ENV} to the key used "
                f"before (or restore {KEY_FILE_NAME}), or delete the vault and reinstall the credentials"
            )

    @property
    def locked(self) -> bool:
        return self.locked_reason is not None

    @property
    def key_id(self) -> str:
        return _key_id(self._fernet_key)

    # -- public API --

    def put(self, ref: str, secrets: Mapping[str, str]) -> None:
        """Store (replace) the secrets of ``ref``."""
        token = Fernet(self._fernet_key).encrypt(json.dumps(_plain(secrets)).encode("utf-8")).decode("ascii")
        with self._exclusive():
            document = self._load_unlocked()
            document["entries"][ref] = token
            self._save(document)

    def get(self, ref: str) -> dict[str, SecretStr]:
        """The secrets of ``ref``.

        Raises :class:`MissingSecretError` if there are none, :class:`VaultLockedError` if they
        cannot be decrypted.
        """
        document = self._load_unlocked()
        token = document["entries"].get(ref)
        if token is None:
            raise MissingSecretError(f"no secrets are stored for {ref!r} in {self.path}")
        return _wrapped(self._decrypt(token, ref))

    def delete(self, ref: str) -> None:
        """Remove the secrets of ``ref`` (no error if there were none)."""
        with self._exclusive():
            document = self._load_unlocked()
            if document["entries"].pop(ref, None) is not None:
                self._save(document)

    def refs(self) -> list[str]:
        """The references that have secrets stored."""
        return sorted(self._load_unlocked()["entries"])

    def rotate_key(self, new_key: bytes | str) -> None:
        """Re-encrypt every entry under ``new_key``; the old key no longer decrypts the vault."""
        with self._exclusive():
            document = self._load_unlocked()
            plain = {ref: self._decrypt(token, ref) for ref, token in document["entries"].items()}
            new_secret = new_key.decode("utf-8") if isinstance(new_key, bytes) else new_key
            fernet_key, kdf = self._derive(new_secret, None)
            fernet = Fernet(fernet_key)
            document = {
                "format": _FORMAT_VERSION,
                "kdf": kdf,
                "key_id": _key_id(fernet_key),
                "entries": {
                    ref: fernet.encrypt(json.dumps(values).encode("utf-8")).decode("ascii")
                    for ref, values in plain.items()
                },
            }
            if self.key_file is not None:
                # The new key lands beside the old one first: a crash before the vault is replaced
                # leaves the old pair intact, and open_vault finishes a rotation that got further.
                _write_atomically(
                    self.key_file.with_name(self.key_file.name + ".new"), new_secret.encode("utf-8")
                )
            self._save(document)
            if self.key_file is not None:
                os.replace(self.key_file.with_name(self.key_file.name + ".new"), self.key_file)
            self._secret_key, self._fernet_key, self._kdf = new_secret, fernet_key, kdf

    def __repr__(self) -> str:
        state = "locked" if self.locked else "unlocked"
        return f"EncryptedFileVault({str(self.path)!r}, {state})"

    # -- internals --

    @staticmethod
    def _derive(secret: str, kdf: Mapping[str, Any] | None) -> tuple[bytes, dict[str, Any] | None]:
        if kdf is None and _is_fernet_key(secret):
            return secret.encode("ascii"), None
        if kdf is None:
            kdf = {"name": "scrypt", "salt": base64.b64encode(os.urandom(16)).decode("ascii")}
        return _stretch(secret, base64.b64decode(kdf["salt"])), dict(kdf)

    def _read(self) -> dict[str, Any] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VaultError(f"cannot read the vault {self.path} ({exc.strerror})") from None
        try:
            document = json.loads(raw)
            if not isinstance(document, dict) or not isinstance(document.get("entries"), dict):
                raise ValueError("no entries")
        except ValueError:
            raise VaultLockedError(
                f"the vault {self.path} is not a readable aria-sync vault; restore it from a backup"
            ) from None
        return document

    def _load_unlocked(self) -> dict[str, Any]:
        if self.locked_reason:
            raise VaultLockedError(self.locked_reason)
        document = self._read()
        if document is None:
            return {"format": _FORMAT_VERSION, "kdf": self._kdf, "key_id": self.key_id, "entries": {}}
        if document.get("key_id") != self.key_id:
            raise VaultLockedError(
                f"the vault {self.path} was re-encrypted with another key; "
                f"set {MASTER_KEY_ENV} to the current key"
            )
        return document

    def _decrypt(self, token: str, ref: str) -> dict[str, str]:
        try:
            values = json.loads(Fernet(self._fernet_key).decrypt(token.encode("ascii")))
        except (InvalidToken, ValueError):
            raise VaultLockedError(
                f"the secrets of {ref!r} cannot be decrypted with this key; "
                f"set {MASTER_KEY_ENV} to the key used before"
            ) from None
        return {str(name): str(value) for name, value in values.items()}

    def _save(self, document: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.path, json.dumps(document, indent=1, sort_keys=True).encode("utf-8"))

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        # Serialises read-modify-write across processes (CLI and dashboard writing at once).
        if fcntl is None:  # pragma: no cover
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self._lock_path, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


# -- choosing a backend ----------------------------------------------------------------------


def _read_key_file(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


def _file_vault(data_dir: Path, environ: Mapping[str, str]) -> EncryptedFileVault:
    vault_path = data_dir / VAULT_FILE_NAME
    env_key = environ.get(MASTER_KEY_ENV, "").strip()
    if env_key:
        return EncryptedFileVault(vault_path, env_key)
    key_path = data_dir / KEY_FILE_NAME
    pending = key_path.with_name(key_path.name + ".new")
    if key_path.exists():
        vault = EncryptedFileVault(vault_path, _read_key_file(key_path), key_file=key_path)
        if vault.locked and pending.exists():  # a rotation that replaced the vault but not yet the key file
            finished = EncryptedFileVault(vault_path, _read_key_file(pending), key_file=key_path)
            if not finished.locked:
                os.replace(pending, key_path)
                return finished
        return vault
    if vault_path.exists():
        # Never mint a new key for an existing vault: that would lock the old secrets for good.
        vault = EncryptedFileVault(vault_path, Fernet.generate_key(), key_file=None)
        vault.locked_reason = (
            f"the vault {vault_path} exists but no key was found; "
            f"set {MASTER_KEY_ENV} to the key used before (or restore {key_path})"
        )
        return vault
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(key_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:  # another process created it first; use theirs
        return EncryptedFileVault(vault_path, _read_key_file(key_path), key_file=key_path)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(Fernet.generate_key())
    return EncryptedFileVault(vault_path, _read_key_file(key_path), key_file=key_path)


def open_vault(data_dir: Path, environ: Mapping[str, str] | None = None) -> Vault:
    """The vault for ``data_dir``: the OS keyring when it is real, else the encrypted file.

    ``ARIA_SYNC_VAULT=file|keyring`` forces a backend. An existing ``vault.enc.json`` keeps the
    file backend, so installing a keyring later does not hide secrets stored before.
    """
    env = os.environ if environ is None else environ
    data_dir = Path(data_dir)
    forced = env.get(VAULT_BACKEND_ENV, "").strip().lower()
    if forced not in ("", "file", "keyring"):
        raise ConfigurationError(f"{VAULT_BACKEND_ENV} must be 'file' or 'keyring', not {forced!r}")
    if forced == "file":
        return _file_vault(data_dir, env)
    if forced == "keyring" or not (data_dir / VAULT_FILE_NAME).exists():
        backend = usable_keyring()
        if backend is not None:
            return KeyringVault(backend)
        if forced == "keyring":
            raise VaultError(
                f"{VAULT_BACKEND_ENV}=keyring but no usable OS keyring was found (fail, null, plaintext or "
                "locked backend); unset it to use the encrypted file vault"
            )
    return _file_vault(data_dir, env)
