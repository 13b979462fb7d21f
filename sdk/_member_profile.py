"""The member's profile across the fleet, as ``Shopper`` methods (logic in shelfwise.profile).

Kept apart from ``_shopper`` so each file holds one part of the journey; ``Shopper`` inherits
these methods.

Example:
    >>> import shelfwise
    >>> with shelfwise.open(":memory:") as sw:
    ...     sw.member("L-1", consents={"offers": True}).profile().consent("offers")
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._errors import InvalidInput, UnknownShopper
from .identity import ShopperInfo
from .profile import MemberProfile, merge_all, seal, unseal
from .profile.local import apply_profile, queue_sealed, read_profile, tombstone_of
from .sync.fleet import ProfilePull
from .sync.protocol import Credentials

if TYPE_CHECKING:
    from ._facade import Shelfwise


class MemberProfileMixin:
    """What a member's profile does on a device; ``Shopper`` supplies the shopper."""

    _sw: Shelfwise
    shopper_id: str

    def info(self) -> ShopperInfo:
        raise NotImplementedError

    def require_consent(self, purpose: str) -> None:
        raise NotImplementedError

    def profile(self) -> MemberProfile:
        """The member's profile as this device holds it (what travels, sealed, to their others).

        Example:
            >>> import shelfwise
            >>> with shelfwise.open(":memory:") as sw:
            ...     sw.member("L-1", consents={"offers": True}).profile().consent("offers")
            True
        """
        if not self.info().is_member:
            raise InvalidInput("only a loyalty member has a profile that travels")
        return read_profile(self._sw.store, self.shopper_id)

    def seal_profile(self, key: bytes) -> bytes:
        """Seal the member's profile with their key and queue it for the collector.

        Needs the ``profile_sync`` consent (``ConsentRequired``); the key comes with the member
        (card + PIN, or the phone app's QR) and is never stored. Example: ``shopper.seal_profile(key)``
        """
        self.require_consent("profile_sync")
        sw = self._sw
        blinded = sw.blinded_id(self.shopper_id)
        # An erasure this device knows of binds every copy it sends from now on.
        profile = self.profile().erase(tombstone_of(sw.store, blinded))
        sealed = seal(profile.to_dict(), key, blinded_id=blinded)
        queue_sealed(sw.store, blinded, sealed, profile.epoch)
        return sealed

    def open_profiles(self, sealed: Sequence[bytes], key: bytes) -> MemberProfile:
        """Merge sealed copies from the member's other devices into this store; return the result.

        Every copy must open with the member's key (``ProfileSealError`` otherwise, nothing
        merged). Example: ``shopper.open_profiles(blobs_from_the_collector, key)``
        """
        blinded = self._sw.blinded_id(self.shopper_id)
        copies = [MemberProfile.from_dict(unseal(blob, key, blinded_id=blinded)) for blob in sealed]
        merged = merge_all(copies).erase(tombstone_of(self._sw.store, blinded))
        apply_profile(self._sw.store, self.shopper_id, merged)
        self._sw.offers.confirm_member(self.shopper_id)  # its uses elsewhere are known now
        return self.profile()

    def pull_profile(
        self, key: bytes, url: str, credentials: Credentials, *, timeout_s: float = 10.0
    ) -> ProfilePull:
        """Fetch the member's sealed copies from the collector, open them with the member's
        key (``sw.fleet.member_key``) and merge them into this store.

        A collector that cannot be reached is no error: ``online`` is False and the device
        serves what it holds. Copies that exist but none opens raise ``ProfileSealError``
        (a wrong PIN; nothing merged). An erasure the collector knows of is applied first.
        Example: ``member.pull_profile(sw.fleet.member_key(card, pin), url, credentials)``
        """
        if not self.info().is_member:
            raise InvalidInput("only a loyalty member has a profile that travels")
        pulled = self._sw.fleet.pull(self.shopper_id, key, url, credentials, timeout_s=timeout_s)
        # The collector answered with every copy it holds (none: no uses elsewhere), so the
        # member's uses of per-customer offers are confirmed, as when ``open_profiles`` merges
        # them; not when a copy could not be read, nor for a member the pull erased whole.
        if pulled.online and not pulled.unreadable and self._still_here():
            self._sw.offers.confirm_member(self.shopper_id)
        return pulled

    def _still_here(self) -> bool:
        try:
            self.info()
        except UnknownShopper:
            return False
        return True


__all__ = ["MemberProfileMixin"]
