"""Member profiles that travel between devices: a CRDT (``crdt``) sealed for the member (``sealing``)."""

from .crdt import ConsentRecord, Counter, Interaction, MemberProfile, merge_all
from .sealing import KdfCost, blind_member_id, derive_member_key, new_member_key, seal, unseal

__all__ = [
    "ConsentRecord",
    "Counter",
    "Interaction",
    "KdfCost",
    "MemberProfile",
    "blind_member_id",
    "derive_member_key",
    "merge_all",
    "new_member_key",
    "seal",
    "unseal",
]
