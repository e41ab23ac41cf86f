"""Large buffers go back to the system when they are freed (issue 19).

glibc's malloc serves a request of at least its mmap threshold from a mapping of its own: a
buffer that grows is remapped rather than copied, and free() gives the memory back. But the
threshold moves: each time such a block is freed, glibc raises the threshold to that block's size
(up to 32 MiB), so after the first large message every later one (the SMTP buffer growing, the
parsing process's pickle, an attachment's bytes) is served from the heap, where a growing buffer
is copied whenever it cannot grow in place and freed memory stays with the process. Four 24 MB
mails sent to the daemon one after the other raised its peak by 35, 97, 98 and 121 MB, and it
kept 245 MB; with the threshold fixed, by 26 to 29 MB each, and it went back to 128 MB after
each one.

Setting the threshold (mallopt M_MMAP_THRESHOLD) ends glibc's adjustment. 1 MiB: what is smaller
comes from the heap as before, so a message of a few kilobytes costs no system call more. An
admin's own MALLOC_MMAP_THRESHOLD_ in the environment is left to rule; elsewhere than glibc
(no mallopt), nothing is done.
"""

from __future__ import annotations

import ctypes
import os

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
LARGE = 1 << 20


def release_large_buffers() -> bool:
    """Fix the mmap threshold at LARGE for this process; False when it was not done."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, LARGE))
