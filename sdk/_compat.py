"""Deprecated aliases: old names keep working for one release and say what replaced them.

Example:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_renamed("Shelfwise.erase_shopper", "Shelfwise.forget_shopper")
    >>> str(caught[0].message)
    'Shelfwise.erase_shopper is deprecated and will be removed in 0.3; use Shelfwise.forget_shopper'
"""

from __future__ import annotations

import warnings

REMOVED_IN = "0.3"


def warn_renamed(old: str, new: str) -> None:
    """Warn (``DeprecationWarning``) the caller of ``old`` that ``new`` replaced it."""
    warnings.warn(
        f"{old} is deprecated and will be removed in {REMOVED_IN}; use {new}",
        DeprecationWarning,
        stacklevel=3,
    )
