"""Sealing a member's profile so that only the member's devices can read it.

- **Blinded id**: ``HMAC-SHA256(chain secret, loyalty id)``. The collector files profiles and
  tombstones under it and never sees the card number; whoever holds the chain secret (every
  device of the chain) can still compute it, so it hides the number from the collector's data,
  not from the chain itself (see docs/fleet.md).
- **Member key**: 32 bytes the collector never holds. Either the phone app's own random key
  (carried in its sign-in QR code), or derived from card + member PIN with Argon2id (RFC 9106
  memory-constrained profile: t=3, p=4, m=64 MiB), salted per member by the blinded id, so every
  device derives the same key and a stolen blob still needs the PIN.
- **Sealed blob**: AES-GCM (``cryptography``) with a random 96-bit nonce, the blinded id and
  the format version bound as associated data, so a blob cannot be replayed under another
  member. NIST SP 800-38D allows 2^32 random-nonce encryptions per key: far beyond one
  member's syncs.

Example:
    >>> key = derive_member_key("2990001234566", "482913", blinded_id="b" * 64, cost=TEST_COST)
    >>> sealed = seal({"v": 1, "epoch": 0}, key, blinded_id="b" * 64)
    >>> unseal(sealed, key, blinded_id="b" * 64)
    {'v': 1, 'epoch': 0}
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

import msgpack
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .._errors import InvalidInput, ProfileSealError

FORMAT = b"shelfwise-profile/1"
KEY_BYTES = 32
NONCE_BYTES = 12
MAX_SEALED_BYTES = 256 * 1024


@dataclass(frozen=True)
class KdfCost:
    """Argon2id cost: passes, lanes, memory in KiB."""

    time_cost: int = 3
    parallelism: int = 4
    memory_kib: int = 64 * 1024


RFC9106_MEMORY_CONSTRAINED = KdfCost()
TEST_COST = KdfCost(time_cost=1, parallelism=1, memory_kib=8)  # tests only: fast, not safe


def blind_member_id(chain_secret: bytes, loyalty_id: str) -> str:
    """The id the collector knows a member by: a keyed hash of the loyalty id (hex).

    Example:
        >>> len(blind_member_id(b"k" * 32, "2990001234566"))
        64
    """
    if len(chain_secret) < 16:
        raise InvalidInput("the chain secret must be at least 16 bytes")
    return hmac.new(chain_secret, loyalty_id.encode("utf-8"), hashlib.sha256).hexdigest()


def derive_member_key(
    card: str, pin: str, *, blinded_id: str, cost: KdfCost = RFC9106_MEMORY_CONSTRAINED
) -> bytes:
    """The member's 32-byte key from card + PIN (Argon2id, salted by the blinded id)."""
    if not pin or not card:
        raise InvalidInput("a member key needs the card and the member PIN")
    salt = hashlib.sha256(FORMAT + b"\x00" + blinded_id.encode("ascii")).digest()[:16]
    return hash_secret_raw(
        secret=f"{card}\x00{pin}".encode(),
        salt=salt,
        time_cost=cost.time_cost,
        memory_cost=cost.memory_kib,
        parallelism=cost.parallelism,
        hash_len=KEY_BYTES,
        type=Type.ID,
    )


def new_member_key() -> bytes:
    """A random member key (what the phone app creates once and shows in its QR code)."""
    return os.urandom(KEY_BYTES)


def _aad(blinded_id: str) -> bytes:
    return FORMAT + b"\x00" + blinded_id.encode("ascii")


def seal(data: Any, key: bytes, *, blinded_id: str) -> bytes:
    """Encrypt msgpack-able ``data`` for the member: nonce + AES-GCM ciphertext."""
    _check_key(key)
    plain = msgpack.packb(data, use_bin_type=True)
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plain, _aad(blinded_id))


def unseal(sealed: bytes, key: bytes, *, blinded_id: str) -> Any:
    """Decrypt and unpack a sealed blob; ``ProfileSealError`` if the key, the member or a byte
    is wrong (AES-GCM authenticates everything: no partial or tampered profile gets through)."""
    _check_key(key)
    if not isinstance(sealed, bytes) or not NONCE_BYTES + 16 <= len(sealed) <= MAX_SEALED_BYTES:
        raise ProfileSealError("a sealed profile has the wrong size")
    try:
        plain = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(blinded_id))
    except InvalidTag as exc:
        raise ProfileSealError(
            "the profile does not open with this member's key (wrong PIN or QR, or tampered)"
        ) from exc
    try:
        return msgpack.unpackb(plain, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ProfileSealError(f"the opened profile is not valid msgpack: {exc}") from exc


def _check_key(key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise InvalidInput(f"a member key is {KEY_BYTES} bytes")
