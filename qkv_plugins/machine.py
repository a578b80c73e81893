"""One description of the machine, for run statistics and published tables."""
import os
import platform
import subprocess
from pathlib import Path
from typing import Optional

import torch

# The package's own source tree: the commit a run's code comes from is this
# tree's, whatever the working directory.
PACKAGE_DIR = Path(__file__).resolve().parent


def cpu_capability() -> str:
    """The vector instruction set torch's CPU kernels dispatch to (e.g.
    ``AVX512``); the same config and seed give the same bits only on the
    same capability."""
    get = getattr(torch.backends.cpu, 'get_cpu_capability', None)
    return get() if get is not None else '?'


def device_name(device: Optional[torch.device] = None) -> str:
    """The GPU's name, or the CPU's architecture, core count, torch's
    intra-op threads and its CPU capability."""
    if (device is None or device.type == 'cuda') and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return (f'{cpu} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} '
            f'threads, {cpu_capability()}')


def describe_machine(device: Optional[torch.device] = None) -> str:
    """Device plus the Python and torch versions."""
    return (f'{device_name(device)}; Python {platform.python_version()}, '
            f'torch {torch.__version__}')


def load_average() -> Optional[float]:
    """The 1-minute load average (None where the system has none): with
    the core count, whether other processes shared the machine."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def git_commit(path: Optional[Path] = None) -> str:
    """The commit of the git checkout holding ``path`` (default: the
    working directory), with ``-dirty`` if tracked files have local
    changes; '?' outside a git checkout."""
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                              capture_output=True, text=True, check=True,
                              cwd=path)
        dirty = subprocess.run(['git', 'status', '--porcelain', '-uno'],
                               capture_output=True, text=True, check=True,
                               cwd=path)
    except (OSError, subprocess.CalledProcessError):
        return '?'
    return head.stdout.strip() + ('-dirty' if dirty.stdout.strip() else '')


def code_commit() -> str:
    """The commit of the qkv_plugins code this process runs (its own
    checkout's, ``-dirty`` with local changes; '?' for an installed wheel)."""
    return git_commit(PACKAGE_DIR)


def is_clean(commit: Optional[str]) -> bool:
    """Whether a recorded commit names a clean checkout."""
    return bool(commit) and commit != '?' and not commit.endswith('-dirty')
