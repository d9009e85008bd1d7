"""Freed host memory kept for the next training step instead of handed back to the kernel.

glibc's malloc serves every block over its mmap threshold (at most 32 MB) with a fresh ``mmap`` and
returns it with ``munmap`` when freed. A training step allocates such blocks again and again:
RNNsearch's attention tanh for all steps (T, B, T_x, A: ~90 MB at the default sizes), the loss
gradient (N, V: ~40 MB), their gradients in backward. Each comes back as untouched pages, and the
first write to each 4 KiB page is a page fault in which the kernel zeroes it: ~30,000 faults per
RNNsearch step, and the first op that writes such a buffer runs ~3× slower than on reused memory
(benchmarks/README.md, "Page faults"). With mmap off and trimming off, freed blocks stay in the
heap and the next step reuses them already mapped. The process keeps its peak memory (it did at
the peak anyway), and nothing computed changes: the allocator decides where tensors live, not their
values. This is what tcmalloc or jemalloc (the allocators PyTorch's CPU tuning guide suggests) do
by default; here it needs no preloaded library.
"""
from __future__ import annotations

import ctypes
import platform

# mallopt parameters from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
KEEP_ALL = 2**31 - 1  # bytes of free heap top before glibc trims it: an int, the largest


def keep_freed_memory() -> bool:
    """On glibc (Linux), from now on serve large blocks from the heap and never trim it, process-wide.
    Returns whether it was applied: False on other C libraries (macOS, musl), where nothing changes."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, KEEP_ALL))
