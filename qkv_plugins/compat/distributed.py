"""Distributed training on CPU-only machines with mmengine 0.10.7.

mmengine's ``_init_dist_pytorch`` and ``_init_dist_slurm`` call
``torch.cuda.set_device`` (Slurm's after a modulo of the GPU count) and its
DDP wrapper passes ``device_ids=[LOCAL_RANK]``; all fail without CUDA. On
such machines we initialise the process group with gloo and wrap with
``device_ids=None``. On GPU nodes nothing changes (NCCL, as configured).
"""
import os
import subprocess

import torch
import torch.distributed as torch_dist
from mmengine.config import Config

_CPU_BACKEND = 'gloo'


def _init_dist_pytorch_cpu(backend: str, init_backend: str = 'torch',
                           **kwargs) -> None:
    """mmengine's pytorch launcher init, without ``torch.cuda.set_device``."""
    if init_backend != 'torch':
        raise ValueError(f'init_backend={init_backend!r} needs CUDA; on CPU '
                         "only 'torch' is supported")
    torch_dist.init_process_group(backend=_CPU_BACKEND, **kwargs)


def _init_dist_slurm_cpu(backend: str, port=None, init_backend: str = 'torch',
                         **kwargs) -> None:
    """mmengine's Slurm launcher init without CUDA: the same environment
    (rank, world size, master address from ``scontrol``), no
    ``torch.cuda.set_device`` (mmengine takes the local rank modulo the GPU
    count, zero on a CPU node) and gloo."""
    if init_backend != 'torch':
        raise ValueError(f'init_backend={init_backend!r} needs CUDA; on CPU '
                         "only 'torch' is supported")
    proc_id = int(os.environ['SLURM_PROCID'])
    ntasks = int(os.environ['SLURM_NTASKS'])
    node_list = os.environ['SLURM_NODELIST']
    addr = subprocess.getoutput(
        f'scontrol show hostname {node_list} | head -n1')
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    os.environ.setdefault('MASTER_ADDR', addr)
    os.environ['WORLD_SIZE'] = str(ntasks)
    os.environ['LOCAL_RANK'] = os.environ.get('SLURM_LOCALID', '0')
    os.environ['RANK'] = str(proc_id)
    torch_dist.init_process_group(backend=_CPU_BACKEND, **kwargs)


def patch_cpu_distributed() -> None:
    """Route mmengine's pytorch- and Slurm-launcher inits through gloo when
    there is no CUDA device (a no-op on GPU machines)."""
    if torch.cuda.is_available():
        return
    from mmengine.dist import utils
    utils._init_dist_pytorch = _init_dist_pytorch_cpu
    utils._init_dist_slurm = _init_dist_slurm_cpu


def sync_bn_to_bn(obj):
    """Copy of a config value with every ``SyncBN`` norm replaced by ``BN``."""
    if isinstance(obj, dict):
        out = {k: sync_bn_to_bn(v) for k, v in obj.items()}
        if out.get('type') == 'SyncBN':
            out['type'] = 'BN'
        return type(obj)(out)
    if isinstance(obj, (list, tuple)):
        return type(obj)(sync_bn_to_bn(v) for v in obj)
    return obj


def adapt_config_for_cpu(cfg: Config, distributed: bool) -> bool:
    """Make a GPU config run on a CPU-only machine; return whether it did.

    Sets the gloo backend, a DDP wrapper without ``device_ids`` and replaces
    SyncBN (CUDA only) by BN. On a machine with CUDA it changes nothing.
    """
    if torch.cuda.is_available():
        return False
    cfg.model = sync_bn_to_bn(cfg.model)
    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = _CPU_BACKEND
    if distributed:
        wrapper = cfg.get('model_wrapper_cfg') or {}
        wrapper.setdefault('type', 'MMDistributedDataParallel')
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
    return True
