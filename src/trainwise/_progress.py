"""Progress bars for long work (tqdm, written to stderr so --json output stays clean)."""

from __future__ import annotations

import sys
from typing import Iterable, Iterator, TypeVar

__all__ = ["progress"]

T = TypeVar("T")


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", enabled: bool = True) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar on stderr when ``enabled`` and stderr is a terminal (no bar in logs)."""
    if not enabled:
        yield from iterable
        return
    from tqdm.auto import tqdm

    # disable=None: tqdm turns itself off when stderr is not a terminal (CI logs, redirected output)
    yield from tqdm(iterable, total=total, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True, disable=None)
