"""Process-wide C allocator settings for batch commands that stream large buffers.

A flow sweep allocates and frees buffers of 0.2-8 MiB thousands of times a second: reads of compressed files,
inflated pieces, the blocks they are joined into. With glibc's defaults each such buffer is mapped fresh from
the kernel, or the heap is trimmed after it is freed, so every new buffer faults in zeroed pages again: a tenth of
the sweep's CPU time went to the kernel. Keeping freed memory on the heap for reuse removes most of it; the heap
then holds at most the largest set of buffers live at one time, as the mapped buffers did.

Only the command line calls this, for the process it owns: a library caller keeps its own allocator settings.
"""

from __future__ import annotations

import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
"""Allocations below this come from the heap (glibc's largest accepted value on 64-bit systems)."""
TRIM_THRESHOLD = 256 * 1024 * 1024
"""Free memory at the top of the heap is given back to the kernel only beyond this."""


def keep_freed_buffers() -> bool:
    """Ask glibc's allocator to reuse freed large buffers instead of returning them to the kernel. Forked workers
    inherit the setting. False where the C library is not glibc (nothing is changed) or refuses a value."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # musl has a mallopt that accepts nothing (returns 0); glibc returns 1 for each value it takes.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
