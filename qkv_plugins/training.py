"""Config → Runner for the thin tools (train, test, sweep)."""
import os.path as osp
from typing import Optional, Sequence, Union

from mmengine.config import Config
from mmengine.runner import Runner

from .compat import (adapt_config_for_cpu, atomic_checkpoint_saving,
                     find_resumable_checkpoint, patch_cpu_distributed)

LAUNCHERS = ('none', 'pytorch', 'slurm', 'mpi')


def load_config(config: Union[str, Config],
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None) -> Config:
    """Read a config (a path or a Config, which is copied), apply
    ``--cfg-options`` and choose its work dir (argument > config >
    ``work_dirs/<config name>``)."""
    cfg = (config.copy() if isinstance(config, Config) else
           Config.fromfile(config))
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join(
            'work_dirs', osp.splitext(osp.basename(cfg.filename))[0])
    return cfg


def build_runner(config: Union[str, Config],
                 *,
                 cfg_options: Optional[dict] = None,
                 work_dir: Optional[str] = None,
                 launcher: str = 'none',
                 amp: bool = False,
                 resume: bool = False,
                 load_from: Optional[str] = None,
                 extra_hooks: Sequence[dict] = ()) -> Runner:
    """A Runner ready to ``train()``/``test()``.

    Args:
        config: Config file.
        cfg_options: Overrides, as mmengine's ``--cfg-options``.
        work_dir: Work dir (default: ``work_dirs/<config name>``).
        launcher: ``none``, ``pytorch`` (torchrun), ``slurm`` or ``mpi``.
        amp: Mixed precision via ``AmpOptimWrapper`` (GPU).
        resume: Resume from the newest complete checkpoint in the work dir
            (starts afresh when there is none).
        load_from: Checkpoint to load weights from (or to resume from).
        extra_hooks: Hook configs appended to ``custom_hooks`` (those whose
            type is already there are left out).
    """
    if launcher not in LAUNCHERS:
        raise ValueError(f'launcher={launcher!r}; allowed: {LAUNCHERS}')
    cfg = load_config(config, cfg_options, work_dir)
    cfg.launcher = launcher
    if amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if load_from is not None:
        cfg.load_from = load_from
    if extra_hooks:
        hooks = list(cfg.get('custom_hooks', []))
        present = {h.get('type') for h in hooks}
        cfg.custom_hooks = hooks + [
            h for h in extra_hooks if h['type'] not in present
        ]
    if resume:
        cfg.resume = True
        if load_from is None:
            cfg.load_from = find_resumable_checkpoint(cfg.work_dir)
    patch_cpu_distributed()
    adapt_config_for_cpu(cfg, distributed=launcher != 'none')
    atomic_checkpoint_saving()
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)
