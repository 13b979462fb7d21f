"""The collector's server key file: device secrets are sealed with it, never kept in clear.

A device secret is stored as ``enc1:<key id>:<base64(nonce + AES-256-GCM ciphertext)>``,
the device id bound in as associated data (a row copied onto another device does not
open). The key file is JSON ``{"format": 1, "keys": [{"id": hex, "key": hex}, ...]}``,
the first key the one that seals; it is created with mode 0600 and refused when group or
others can read it. Rotation (``python -m shelfwise.upstream rotate-key``) is crash-safe:
the new key is added to the file first, every secret is re-sealed in one transaction, and
only then are the old keys dropped from the file, so at every moment the file holds a key
for every stored secret.

Example:
    >>> import pathlib, tempfile
    >>> keys = ServerKeys.open(pathlib.Path(tempfile.mkdtemp()) / "server.key")
    >>> sealed = keys.seal("kiosk-1", b"s" * 32)
    >>> sealed.startswith("enc1:"), keys.unseal("kiosk-1", sealed) == b"s" * 32
    (True, True)
"""

from __future__ import annotations

import base64
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shelfwise import InvalidInput, StoreError

PREFIX = "enc1"
FORMAT = 1


@dataclass(frozen=True)
class _Key:
    key_id: str
    key: bytes


def _new_key() -> _Key:
    return _Key(os.urandom(4).hex(), AESGCM.generate_key(bit_length=256))


def is_sealed(value: str) -> bool:
    """Whether a stored secret is sealed (else it is a plaintext row from before sealing)."""
    return value.startswith(PREFIX + ":")


class ServerKeys:
    """The keys of one key file (``path`` None: in memory only, for ``:memory:`` stores)."""

    def __init__(self, keys: list[_Key], path: Path | None = None) -> None:
        if not keys:
            raise InvalidInput("a server key file needs at least one key")
        self.keys = keys
        self.path = path

    @classmethod
    def ephemeral(cls) -> ServerKeys:
        """A key that lives as long as the process (secrets sealed with it die with it)."""
        return cls([_new_key()])

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> ServerKeys:
        """Read the key file, creating it (mode 0600) when missing and ``create``."""
        target = Path(path)
        if not target.exists():
            if not create:
                raise InvalidInput(f"server key file {target} does not exist")
            created = cls([_new_key()], target)
            created._write()
            return created
        mode = target.stat().st_mode
        if not stat.S_ISREG(mode):
            raise InvalidInput(f"server key file {target} is not a regular file")
        if mode & 0o077:
            raise InvalidInput(
                f"server key file {target} is readable by others (mode {mode & 0o777:o}); "
                f"run: chmod 600 {target}"
            )
        try:
            data = json.loads(target.read_text(encoding="utf-8"))
            keys = [_Key(str(k["id"]), bytes.fromhex(k["key"])) for k in data["keys"]]
            if data["format"] != FORMAT or any(len(k.key) != 32 for k in keys):
                raise ValueError("unsupported format or key length")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{target} is not a shelfwise server key file: {exc}") from exc
        return cls(keys, target)

    def _write(self) -> None:
        """Replace the key file atomically: a 0600 temp file, fsynced, renamed into place."""
        if self.path is None:
            return
        body = json.dumps(
            {"format": FORMAT, "keys": [{"id": k.key_id, "key": k.key.hex()} for k in self.keys]}
        ).encode()
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, self.path)
        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)

    @property
    def key_id(self) -> str:
        """The id of the key that seals."""
        return self.keys[0].key_id

    def seal(self, device_id: str, secret: bytes) -> str:
        """Encrypt a device secret under the current key, bound to its device id."""
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[0].key).encrypt(nonce, secret, device_id.encode())
        return f"{PREFIX}:{self.key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def unseal(self, device_id: str, value: str) -> bytes:
        """The secret of a stored value: sealed under any key of the file, or plaintext hex."""
        if not is_sealed(value):
            return bytes.fromhex(value)  # a row from before sealing (migrated on open)
        _, key_id, blob = value.split(":", 2)
        for key in self.keys:
            if key.key_id == key_id:
                raw = base64.b64decode(blob)
                try:
                    return AESGCM(key.key).decrypt(raw[:12], raw[12:], device_id.encode())
                except InvalidTag as exc:
                    raise StoreError(
                        f"the secret of device {device_id} does not open with key {key_id}"
                    ) from exc
        raise StoreError(
            f"the secret of device {device_id} is sealed with key {key_id}, which the server "
            "key file does not hold (a key file from another collector, or restored old?)"
        )

    def begin_rotation(self) -> None:
        """Add a new sealing key in front of the old ones (written before anything is re-sealed)."""
        self.keys = [_new_key(), *self.keys]
        self._write()

    def finish_rotation(self) -> None:
        """Drop every key but the current one (once every secret is sealed with it)."""
        self.keys = self.keys[:1]
        self._write()


__all__ = ["ServerKeys", "is_sealed"]
