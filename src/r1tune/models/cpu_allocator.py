"""Keep freed memory in the process while training on a CPU, so each step's activations reuse pages.

PyTorch's CPU tensors come from the C library's malloc. glibc hands allocations above its mmap threshold
(128 KB at start, adaptive up to 32 MB) to fresh `mmap`s and gives freed memory at the top of its heap back to
the kernel past its trim threshold; a training step allocates and frees activations of 1-20 MB hundreds of
times, so their pages are faulted in and zeroed again on every step. On this project's 2-core CPU a
SmolLM2-135M RMSNorm forward + backward (2 x 450 tokens) took 2.5 ms with 916 page faults as shipped and
1.9 ms with 76 after this setting; whole LoRA steps on the bench-peer data took 5-8% less time (in-process
A/B, benchmarks/bench_peer.py for the end-to-end figure). The cost: memory a step freed stays with the
process (its peak resident size is unchanged) until it exits. Elsewhere than glibc (macOS, musl) nothing
changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling for 64-bit builds; larger requests still get their own mmap
TRIM_THRESHOLD = 1 << 30


@cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap threshold to its ceiling and its trim threshold to 1 GiB, once per process.
    Returns whether the C library took both settings (False where it is not glibc)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    taken = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    log.debug("malloc keeps freed memory for reuse: %s", taken)
    return taken
