"""Hand the memory glibc's malloc keeps free back to the system, every ten seconds.

CPython's small-object allocator takes its memory with mmap, not malloc, so what
malloc keeps after a burst (API answers and watch pages read in the API threads,
each thread with its own malloc arena) is never reused for Python objects and
only adds to the resident set. `malloc_trim(0)` returns it: 6-7 MiB less at
the peak in a run with 3,000 Destinations (docs/benchmarks.md). A no-op where the C
library has no malloc_trim (musl, macOS).
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

TRIM_SECONDS = 10.0


def malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or None where the process's C library has none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


async def trim_forever(interval: float = TRIM_SECONDS) -> None:
    """Trim every `interval` seconds until cancelled, in a thread: a trim walks every
    arena (up to 100 ms at 3,000 Destinations) and ctypes lets go of the GIL meanwhile."""
    trim = malloc_trim()
    if trim is None:
        return
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        await loop.run_in_executor(None, trim, 0)
