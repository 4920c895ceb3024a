"""Keep freed memory in a coding process instead of handing it back to the OS (glibc).

Coding an image allocates and frees the same few large buffers layer after layer
(a 768×512 image: 64 × 256 × 384 float32 = 25 MB per activation).  glibc gives
such blocks back to the OS when they are freed (mmap'ed chunks, heap trimming),
so the next layer and the next image page-fault all that memory in again.
Raising both thresholds keeps it in the process: learned decoding is faster
(``bench/bench_decode_memory.py``) at the price of the process keeping its peak
memory.  ``load_network`` calls :func:`keep_freed_memory` once per process.

``CLIC_KEEP_FREED_MEMORY=0`` turns it off.  Where the C library is not glibc
(musl, macOS, Windows) it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform
from functools import lru_cache

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
KEEP_BYTES = 1 << 30  # blocks up to 1 GiB come from the heap and stay there when freed
SWITCH = "CLIC_KEEP_FREED_MEMORY"


@lru_cache(maxsize=None)
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; True where that took effect."""
    if os.environ.get(SWITCH, "1") == "0" or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, KEEP_BYTES)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_BYTES))
