"""One description of the machine, for run statistics and published tables."""
import platform
from typing import Optional

import torch


def device_name(device: Optional[torch.device] = None) -> str:
    """The GPU's name, or the CPU's architecture and thread count."""
    if (device is None or device.type == 'cuda') and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f'{cpu} CPU, {torch.get_num_threads()} threads'


def describe_machine(device: Optional[torch.device] = None) -> str:
    """Device plus the Python and torch versions."""
    return (f'{device_name(device)}; Python {platform.python_version()}, '
            f'torch {torch.__version__}')


def git_commit() -> str:
    """The checkout's commit (``-dirty`` with local changes to tracked
    files), or '?' outside a git checkout."""
    import subprocess
    try:
        head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'],
                              capture_output=True, text=True, check=True)
        dirty = subprocess.run(['git', 'status', '--porcelain', '-uno'],
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return '?'
    return head.stdout.strip() + ('-dirty' if dirty.stdout.strip() else '')
