"""Members across the chain's kiosks: checking a PIN, the member's key, their profile.

A member's card + PIN give their key (``sw.fleet.member_key``: Argon2id, about a second). The
kiosk derives it only after the PIN was accepted, keeps it in the visit's session (memory only)
and uses it to pull the member's sealed copies from the collector at sign-in and to seal their
profile again when they leave.

A kiosk that never saw the member has no hash of their PIN. It checks the PIN against the
member's sealed copies instead: if one opens with the key from card + PIN, the PIN is right
(AES-GCM authenticates), and the kiosk keeps the PIN's hash from then on. The same check runs
when the hash a kiosk holds refuses the PIN: the member may have set a new one elsewhere. Those guesses are
throttled like any PIN check, per card and per kiosk, before the key is derived; without the
network such a kiosk cannot check the PIN and says so (the card alone still works).
"""

from __future__ import annotations

import hashlib
from typing import Any

import shelfwise
from shelfwise import AuthenticationFailed, AuthLocked, ProfileSealError, ShelfwiseError

from .kiosk import Kiosk
from .web import ApiError

# The same ceilings as the SDK's own member PIN checks (docs/security.md).
CARD_BACKOFF = shelfwise.Backoff(free=3, base_s=30.0, max_s=3600.0)
KIOSK_BACKOFF = shelfwise.Backoff(free=10, base_s=5.0, max_s=900.0)


def _card_key(number: str) -> str:
    return hashlib.sha256(f"shelfwise-fleet-card:{number}".encode()).hexdigest()[:32]


def unlock_from_fleet(kiosk: Kiosk, number: str, pin: str) -> bytes:
    """The member's key, if ``pin`` opens one of their copies at the collector.

    Raises ``AuthLocked`` (too many guesses), ``AuthenticationFailed`` (``pin_wrong``, or
    ``no_pin`` when the chain holds no copy to check it against) or ``ApiError`` 503 when
    the collector cannot be reached.
    """
    sw = kiosk.sw
    card = sw.throttle("member_pin_fleet", CARD_BACKOFF)
    here = sw.throttle("member_pin_fleet_kiosk", KIOSK_BACKOFF)
    here.attempt(kiosk.kiosk_id)  # counted before anything is checked (parallel guesses too)
    card.attempt(_card_key(number))
    key = sw.fleet.member_key(number, pin)
    try:
        copies = sw.fleet.copies(
            number,
            key,
            str(kiosk.config.upstream),
            kiosk.credentials,
            timeout_s=kiosk.config.fleet_timeout_s,
        )
    except ProfileSealError as exc:
        raise AuthenticationFailed("wrong PIN for this card", reason="pin_wrong") from exc
    except ShelfwiseError as exc:
        raise ApiError(
            503,
            "FleetOffline",
            "this kiosk cannot check your PIN without the network: sign in with your card alone",
            "fleet_offline",
        ) from exc
    if not copies.copy_ids:
        raise AuthenticationFailed(
            "this card has no PIN on this kiosk yet: set one in the phone app or at the till",
            reason="no_pin",
        )
    card.succeeded(_card_key(number))
    here.forgive(kiosk.kiosk_id)
    return key


def check_pin(kiosk: Kiosk, number: str, pin: str) -> tuple[bytes | None, bool]:
    """Check a member's PIN here, or against their copies; return (key or None, from_fleet).

    The key is derived only when profiles travel (a chain secret and a collector).
    """
    try:
        known: shelfwise.Shopper | None = kiosk.sw.shopper(number)
    except shelfwise.UnknownShopper:
        known = None
    if known is not None and known.has_pin():
        try:
            known.verify_pin(pin, device=kiosk.kiosk_id)
        except AuthLocked:
            raise
        except AuthenticationFailed:
            if not kiosk.fleet_on:
                raise
            # The member may have changed their PIN on another device: their copies say.
            return unlock_from_fleet(kiosk, number, pin), True
        return (kiosk.sw.fleet.member_key(number, pin) if kiosk.fleet_on else None), False
    if not kiosk.fleet_on:
        raise AuthenticationFailed(
            "this card has no PIN yet: set one in the phone app or at the till", reason="no_pin"
        )
    return unlock_from_fleet(kiosk, number, pin), True


def arrive(kiosk: Kiosk, member: shelfwise.Shopper, key: bytes | None) -> dict[str, Any]:
    """A verified member signed in: merge their copies from the collector, then seal the
    result (it replaces the copies merged). Offline, the kiosk serves what it holds."""
    if key is None:
        return {"on": kiosk.fleet_on, "online": False, "copies": 0}
    try:
        pulled = member.pull_profile(
            key,
            str(kiosk.config.upstream),
            kiosk.credentials,
            timeout_s=kiosk.config.fleet_timeout_s,
        )
    except ProfileSealError:  # every copy sealed under an earlier PIN: this kiosk's data stays
        kiosk.seal(member, key)
        return {"on": True, "online": True, "copies": 0, "unreadable": True}
    kiosk.seal(member, key)
    return {
        "on": True,
        "online": pulled.online,
        "copies": pulled.copies,
        "unreadable": bool(pulled.unreadable),
        "interactions": len(pulled.profile.interactions),
    }


def profile_view(kiosk: Kiosk, number: str, key: bytes) -> dict[str, Any]:
    """The member's profile as the chain holds it (the phone app's screen), nothing stored."""
    try:
        copies = kiosk.sw.fleet.copies(
            number,
            key,
            str(kiosk.config.upstream),
            kiosk.credentials,
            timeout_s=kiosk.config.fleet_timeout_s,
        )
    except ProfileSealError as exc:
        raise AuthenticationFailed("wrong PIN for this card", reason="pin_wrong") from exc
    except ShelfwiseError as exc:
        raise ApiError(
            503, "FleetOffline", "the phone app cannot reach the chain right now", "fleet_offline"
        ) from exc
    profile = copies.profile
    items = kiosk.sw.catalog.get_many(sorted({i.item_id for i in profile.interactions}))
    kinds: dict[str, int] = {}
    for interaction in profile.interactions:
        kinds[interaction.type] = kinds.get(interaction.type, 0) + 1
    return {
        "member": number,
        "copies": len(copies.copy_ids),
        "erased_ms": copies.erased_ms or None,
        "counts": kinds,
        "recent": [
            {
                "type": i.type,
                "item_id": i.item_id,
                "name": items[i.item_id].name if i.item_id in items else i.item_id,
                "ts_ms": i.ts_ms,
                "store_id": i.store_id,
            }
            for i in profile.interactions[-15:][::-1]
        ],
        "consents": {
            purpose: {"granted": r.granted, "updated_ms": r.updated_ms, "device": r.device}
            for purpose, r in profile.consents.items()
        },
        "counters": {name: profile.counter(name) for name in profile.counters},
    }


__all__ = ["arrive", "check_pin", "profile_view", "unlock_from_fleet"]
