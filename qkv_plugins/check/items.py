"""The node check's items: each returns PASS, FAIL or SKIP with a detail.

Every item that touches layers walks the layer catalog, so a new block is
checked without editing this file.
"""
import importlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import torch

from ..compat.requirements import MIN_TORCH, torch_version
from ..layers.catalog import entries
from ..layers.options import QKV_MODES, SIMILARITIES

# Largest |fast − explicit| / max|explicit| allowed per precision.
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 3e-2, torch.float16: 1e-2}


@dataclass
class Item:
    name: str
    status: str  # 'PASS', 'FAIL' or 'SKIP'
    detail: str
    seconds: float = 0.0


def timed(name: str, fn: Callable[[], Tuple[str, str]]) -> Item:
    """Run one item; an exception is its FAIL, with the error as detail."""
    start = time.perf_counter()
    try:
        status, detail = fn()
    except Exception as error:  # noqa: BLE001  (an item reports, never aborts)
        status, detail = 'FAIL', f'{type(error).__name__}: {error}'
    return Item(name, status, detail, time.perf_counter() - start)


def _version(module: str) -> Optional[str]:
    try:
        return importlib.import_module(module).__version__
    except ImportError:
        return None


def sdpa_backends(device: torch.device) -> List[str]:
    """The fused SDPA kernels this torch offers on ``device``."""
    if device.type == 'cuda':
        backends = []
        for name in ('flash', 'mem_efficient', 'cudnn'):
            enabled = getattr(torch.backends.cuda, f'{name}_sdp_enabled', None)
            if enabled is not None and enabled():
                backends.append(name)
        return backends
    op = getattr(torch.ops.aten, '_scaled_dot_product_flash_attention_for_cpu',
                 None)
    return ['flash (cpu)'] if op is not None else []


def environment(device: torch.device) -> Tuple[str, str]:
    """Python, torch, CUDA/cuDNN, GPU, mmcv (with or without ops), mmengine,
    mmseg, mmdet, SDPA backends; FAIL if something required is missing."""
    parts = [f'Python {sys.version.split()[0]}', f'torch {torch.__version__}']
    problems = []
    if torch_version() < MIN_TORCH:
        problems.append(f'torch < {".".join(map(str, MIN_TORCH))}')
    if device.type == 'cuda':
        parts += [f'CUDA {torch.version.cuda}',
                  f'cuDNN {torch.backends.cudnn.version()}',
                  torch.cuda.get_device_name(device)]
    for module in ('mmcv', 'mmengine', 'mmseg', 'mmdet'):
        version = _version(module)
        parts.append(f'{module} {version or "missing"}')
        if version is None and module != 'mmdet':
            problems.append(f'{module} missing')
    try:
        importlib.import_module('mmcv._ext')
        parts.append('mmcv ops: yes')
    except ImportError:
        # the layers need none, but mmseg (and so training) cannot import
        parts.append('mmcv ops: missing')
        problems.append('mmcv ops missing (mmseg needs them: reinstall mmcv '
                        'with MMCV_WITH_OPS=1)')
    backends = sdpa_backends(device)
    parts.append(f'SDPA: {", ".join(backends) or "math only"}')
    if not backends:
        problems.append('no fused SDPA kernel')
    detail = '; '.join(parts)
    return ('FAIL', f'{", ".join(problems)} — {detail}') if problems else (
        'PASS', detail)


def _cases():
    """(entry, options) for every catalogued layer × mode × similarity ×
    mask_self it accepts."""
    for entry in entries():
        for mode, similarity, mask in product(QKV_MODES, SIMILARITIES,
                                              (False, True)):
            options = dict(entry.bench_options, qkv_mode=mode,
                           similarity=similarity, mask_self=mask)
            if entry.accepts(**options):
                yield entry, options


def _relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    scale = expected.abs().max().clamp_min(1e-6)
    return float((got.float() - expected.float()).abs().max() / scale)


def correctness(device: torch.device,
                dtypes: Sequence[torch.dtype]) -> Tuple[str, str]:
    """Fast path == explicit path for every case in fp32 and, under
    autocast to each of ``dtypes``, within :data:`TOLERANCE` of the fp32
    explicit output; every gradient finite."""
    failures, count = [], 0
    for entry, options in _cases():
        torch.manual_seed(0)
        layer = entry.cls(16, **options).to(device)
        with torch.no_grad():  # make the zero-initialised factors visible
            for param in layer.parameters():
                param.normal_(0, 0.1)
        x = torch.randn(2, 16, 5, 7, device=device, requires_grad=True)
        expected, _ = layer.forward_with_weights(x, need_weights=True)
        label = (f'{entry.name}:{options["qkv_mode"]},{options["similarity"]}'
                 f'{",mask" if options["mask_self"] else ""}')
        for dtype in (torch.float32, *dtypes):
            count += 1
            x.grad = None
            layer.zero_grad(set_to_none=True)
            context = (torch.autocast(device.type, dtype=dtype)
                       if dtype != torch.float32 else nullcontext())
            with context:
                fast = layer(x)
            error = _relative_error(fast, expected)
            fast.float().sum().backward()
            grads = [x.grad] + [p.grad for p in layer.parameters()
                                if p.grad is not None]
            finite = all(bool(torch.isfinite(g).all()) for g in grads)
            if error > TOLERANCE[dtype] or not finite:
                failures.append(f'{label} {str(dtype)[6:]}: error '
                                f'{error:.1e}{"" if finite else ", grads not finite"}')
    if failures:
        return 'FAIL', (f'{len(failures)}/{count} cases off: '
                        + '; '.join(failures[:6]))
    return 'PASS', (f'{count} cases (layers {[e.name for e in entries()]} × '
                    f'modes × similarity × mask_self × '
                    f'{["float32"] + [str(d)[6:] for d in dtypes]})')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def distributed_training(config: Path, device: torch.device, iters: int,
                         dist_train: Optional[str], log_dir: Path,
                         scale: Tuple[int, int], crop: Tuple[int, int]
                         ) -> Tuple[str, str]:
    """One-process distributed training of ``config`` for ``iters``
    iterations with evaluation on a generated Cityscapes-shaped tree, then a
    resume from its checkpoint to ``iters + iters // 2``."""
    with tempfile.TemporaryDirectory(prefix='qkv-check-') as work:
        return _train_and_resume(Path(work), config, device, iters,
                                 dist_train, log_dir, scale, crop)


def _train_and_resume(work: Path, config: Path, device: torch.device,
                      iters: int, dist_train: Optional[str], log_dir: Path,
                      scale: Tuple[int, int], crop: Tuple[int, int]
                      ) -> Tuple[str, str]:
    from mmengine.config import Config

    from .cityscapes import make_cityscapes_tree, shrink_config
    data = make_cityscapes_tree(work / 'cityscapes',
                                size=(scale[1], scale[0]))
    cfg = Config.fromfile(str(config))
    shrink_config(cfg, data, scale, crop, reduce_zero_label=False,
                  iters=iters)
    cfg.default_hooks.checkpoint.interval = max(1, iters // 2)
    path = work / 'config.py'
    cfg.dump(str(path))
    logs = []
    for max_iters in (iters, iters + iters // 2):
        if dist_train:
            command = [dist_train, str(path), '1']
        else:
            command = [sys.executable, '-m', 'torch.distributed.run',
                       '--nproc_per_node=1', f'--master_port={free_port()}',
                       '-m', 'qkv_plugins.commands.train', str(path),
                       '--launcher', 'pytorch']
        command += ['--work-dir', str(work / 'run'), '--resume',
                    '--cfg-options', f'train_cfg.max_iters={max_iters}',
                    f'param_scheduler.0.end={max_iters}',
                    # a divisor of both ends: mmengine 0.10.3 validates
                    # only on multiples, not at max_iters
                    f'train_cfg.val_interval={max(1, iters // 2)}']
        # the launcher scripts run ${PYTHON:-python}: this interpreter
        env = dict(os.environ, PORT=str(free_port()), PYTHON=sys.executable)
        result = subprocess.run(command, capture_output=True, text=True,
                                env=env, timeout=1800)
        logs.append(result.stdout + result.stderr)
        if result.returncode != 0:
            (log_dir / 'check-train.log').write_text('\n'.join(logs))
            return 'FAIL', (f'{" ".join(command[:3])}… exited '
                            f'{result.returncode}: '
                            f'{logs[-1].strip().splitlines()[-1][:200]}')
    from ..workdir import STATS_FILE, read_json
    stats = read_json(work / 'run' / STATS_FILE, 'run statistics')
    resumed = 'resumed' in logs[1].lower()
    if not (stats.get('complete') and resumed
            and stats.get('iter') == iters + iters // 2):
        return 'FAIL', (f'after the resume: complete={stats.get("complete")}'
                        f', iter={stats.get("iter")}, resumed={resumed}')
    miou = (stats.get('metrics') or {}).get('mIoU')
    return 'PASS', (f'{config.name}: {iters} iterations + evaluation, '
                    f'resumed to {stats["iter"]} (mIoU {miou}, '
                    f'{stats.get("world_size")} process, '
                    f'{"NCCL" if device.type == "cuda" else "gloo"})')


def cuda_tests(device: torch.device, tests_root: Optional[str]
               ) -> Tuple[str, str]:
    """The suite's CUDA-marked tests (``pytest -m cuda``)."""
    if device.type != 'cuda':
        return 'SKIP', 'no CUDA device: the CUDA tests skip themselves here'
    if not tests_root:
        return 'SKIP', 'no --tests-root (the repository checkout) given'
    result = subprocess.run(
        [sys.executable, '-m', 'pytest', '-m', 'cuda', '-q', tests_root],
        capture_output=True, text=True, timeout=1200)
    last = (result.stdout.strip().splitlines() or ['?'])[-1]
    return ('PASS' if result.returncode == 0 else 'FAIL'), last
