"""Extra peak memory of a callable, on CUDA or on the CPU.

CUDA: ``max_memory_allocated`` minus the allocation before the call. CPU:
the process's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs``) minus the resident set before the call, with
glibc told to ``mmap`` every large block so that freed tensors leave the
resident set at once (otherwise reused heap pages hide allocations).
"""
import ctypes
import gc
from pathlib import Path
from typing import Callable

import torch

_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 64 * 1024
_configured = False


def _read_status_kib(field: str) -> int:
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith(field + ':'):
            return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def configure_cpu_memory() -> None:
    """Have glibc ``mmap`` blocks ≥ 64 KiB (once), so that freed tensors
    leave the resident set; call before allocating what is measured."""
    global _configured
    if not _configured:
        libc = ctypes.CDLL('libc.so.6')
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES)
        _configured = True


def cpu_memory_supported() -> bool:
    try:
        Path('/proc/self/clear_refs').write_text('5')
        return True
    except OSError:
        return False


def extra_peak_mib(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory ``fn()`` needs above what was allocated before it, MiB."""
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    configure_cpu_memory()
    # Free heap chunks would be reused without touching new pages: give
    # their pages back so that reusing them shows in the resident set.
    ctypes.CDLL('libc.so.6').malloc_trim(0)
    Path('/proc/self/clear_refs').write_text('5')  # VmHWM := VmRSS
    before = _read_status_kib('VmRSS')
    fn()
    return (_read_status_kib('VmHWM') - before) / 1024
