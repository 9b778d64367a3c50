"""One context-manager protocol for everything that holds a device, file or model.

Every resource in Vigil has ``close()``; inheriting :class:`Closing` makes ``with resource:``
close it, so the pairing of ``__enter__``/``__exit__`` with ``close()`` is written once.
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self


class Closing(abc.ABC):
    @abc.abstractmethod
    def close(self) -> None:
        """Release what this object holds. Safe to call more than once."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
