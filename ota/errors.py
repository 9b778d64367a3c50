"""The OTA error subtree, split by whose fault it is (as python-tuf splits it).

* :class:`RepositoryRefused`: the repository's data failed verification (bad signature, wrong
  hash, expired or replayed metadata, a forbidden downgrade). Retrying does not help; the unit
  keeps what it runs and reports the reason.
* :class:`DownloadFailed`: the transport failed (link down, timeout, HTTP error). Retried later,
  resuming where it stopped.
* :class:`BundleRefused`: a bundle's contents are unsafe or inconsistent (traversal, links out
  of the slot, device nodes, size bombs, truncation).
* :class:`SlotTransitionError`: a slot event that is illegal in the current phase (a bug, or a
  command given at the wrong time).
"""

from __future__ import annotations

from drivers.errors import VigilError


class OtaError(VigilError):
    """Root of every OTA error."""


class RepositoryRefused(OtaError, ValueError):
    """Update metadata or a target failed verification; nothing was changed."""


class DownloadFailed(OtaError, OSError):
    """The repository could not be reached or a transfer broke off (retry later)."""


class BudgetExhausted(DownloadFailed):
    """The uplink's byte budget for updates is spent; the download resumes later."""


class BundleRefused(OtaError, ValueError):
    """A bundle is malformed or unsafe to unpack."""


class SlotTransitionError(OtaError, ValueError):
    """An event that the slot state machine does not allow in its current phase."""
