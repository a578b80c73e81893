"""Config → Runner for the thin tools (train, test, sweep)."""
import os
import os.path as osp
from typing import Callable, Optional, Sequence, Union

import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.runner import Runner

from .compat import (adapt_config_for_cpu, atomic_checkpoint_saving,
                     find_resumable_checkpoint, no_follow_pointer,
                     patch_cpu_distributed)
from .io import remove_stale_temporaries
from .run_record import (attention_record, checkpoint_meta, checkpoint_record,
                         variant_differences)
from .workdir import (RunFileError, WorkDirConflict, config_fingerprint,
                      locked, run_identity, run_state)

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
    # What the run computes, before any machine-specific change
    # (RunStatsHook records it; "complete" means complete for it), and the
    # same without its length (another seed or config is another run).
    cfg.run_fingerprint = config_fingerprint(cfg)
    cfg.run_identity = run_identity(cfg)
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
    import qkv_plugins
    if qkv_plugins.MMSEG_GLUE_ERROR:
        raise ImportError(qkv_plugins.MMSEG_GLUE_ERROR)
    cfg = load_config(config, cfg_options, work_dir)
    cfg.launcher = launcher
    if amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if load_from is not None:
        cfg.load_from = load_from
    # every checkpoint records the run and its attention variant
    extra_hooks = [*extra_hooks, dict(type='RunRecordHook')]
    hooks = list(cfg.get('custom_hooks', []))
    present = {h.get('type') for h in hooks}
    cfg.custom_hooks = hooks + [
        h for h in extra_hooks if h['type'] not in present
    ]
    if resume:
        cfg.resume = True
        if load_from is None:
            cfg.load_from = find_resumable_checkpoint(cfg.work_dir)
            # nothing to resume (none saved, or last_checkpoint names a
            # deleted file): start afresh rather than crash
            cfg.resume = cfg.load_from is not None
    patch_cpu_distributed()
    adapt_config_for_cpu(cfg, distributed=launcher != 'none')
    atomic_checkpoint_saving()
    no_follow_pointer()
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def _seed(cfg) -> Optional[int]:
    return (cfg.get('randomness') or {}).get('seed')


def _refuse_foreign_checkpoint(cfg) -> None:
    """WorkDirConflict if the checkpoint ``--resume`` would continue is of
    another run (identity, or seed for checkpoints without our record)."""
    checkpoint = find_resumable_checkpoint(cfg.work_dir)
    if checkpoint is None:
        return
    record = checkpoint_record(checkpoint)
    if record is not None and record.get('identity') not in (
            None, cfg.run_identity):
        raise WorkDirConflict(
            f'{checkpoint} is of another config or seed (identity '
            f'{record.get("identity")}, seed {record.get("seed")}; asked '
            f'identity {cfg.run_identity}, seed {_seed(cfg)}): --resume '
            'would mix two runs; choose another --work-dir (nothing was '
            'changed)')
    if record is None:
        seed = checkpoint_meta(checkpoint).get('seed')
        if seed is not None and _seed(cfg) is not None and seed != _seed(cfg):
            raise WorkDirConflict(
                f'{checkpoint} is of seed {seed} (asked seed {_seed(cfg)}): '
                '--resume would mix two runs; choose another --work-dir '
                '(nothing was changed)')


def launcher_rank() -> int:
    """This process's rank as the launcher set it (before the process group
    exists): torchrun's ``RANK``, Slurm's ``SLURM_PROCID``, else 0."""
    for name in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if os.environ.get(name, '').isdigit():
            return int(os.environ[name])
    return 0


def train(config: Union[str, Config],
          *,
          cfg_options: Optional[dict] = None,
          work_dir: Optional[str] = None,
          launcher: str = 'none',
          amp: bool = False,
          resume: bool = False,
          log: Callable[[str], None] = print) -> bool:
    """Train a config; return False if there was nothing to do.

    With ``resume``, a work dir whose run is complete for this config and
    length is left as it is; a run of another config or length goes on to
    this one, unless it went past this length (``WorkDirConflict``). The
    work dir is locked for the whole run
    (:mod:`.workdir`): a second run on it raises ``WorkDirBusy``.
    """
    cfg = load_config(config, cfg_options, work_dir)
    rank = launcher_rank() if launcher != 'none' else 0
    with locked(cfg.work_dir, rank):
        if resume:
            try:
                state, why = run_state(cfg.work_dir, cfg.run_fingerprint,
                                       cfg.get('train_cfg',
                                               {}).get('max_iters'),
                                       cfg.run_identity, _seed(cfg))
            except RunFileError as error:  # rewritten by this run
                state, why = 'partial', str(error)
                log(f'[train] {error}; resuming')
            if state == 'foreign':
                raise WorkDirConflict(
                    f'{cfg.work_dir} holds a run {why}: --resume would mix '
                    'two runs; choose another --work-dir (nothing was '
                    'changed)')
            if state != 'complete':
                _refuse_foreign_checkpoint(cfg)
            if state == 'complete':
                log(f'[train] {cfg.work_dir} holds a complete run of this '
                    'config; nothing to do (its results are left as they '
                    'are)')
                return False
            if state == 'past':
                raise WorkDirConflict(
                    f'{cfg.work_dir} holds a run {why}: resuming cannot '
                    'give the requested run; choose another --work-dir')
            if state == 'other':
                log(f'[train] {cfg.work_dir} holds a run {why}; resuming it '
                    'to the requested config (its results will be replaced)')
        if rank == 0:
            for stale in remove_stale_temporaries(cfg.work_dir):
                log(f'[train] removed {stale}: its writer is gone')
        runner = build_runner(cfg, launcher=launcher, amp=amp, resume=resume)
        runner.train()
    if torch_dist.is_initialized():
        torch_dist.barrier()  # every rank has finished writing
    return True

class CheckpointMismatch(ValueError):
    """A checkpoint's weights do not fit the model."""


def check_checkpoint_fits(model, checkpoint: str, examples: int = 5) -> None:
    """Raise CheckpointMismatch unless ``checkpoint``'s state dict has
    exactly the model's keys with the model's shapes (a ``module.`` prefix
    is dropped, as mmengine does; a distributed wrapper's model is
    unwrapped)."""
    from mmengine.model import is_model_wrapper
    from mmengine.runner.checkpoint import _load_checkpoint
    if is_model_wrapper(model):
        model = model.module
    loaded = _load_checkpoint(checkpoint, map_location='cpu')
    state = loaded.get('state_dict', loaded) if isinstance(loaded,
                                                           dict) else {}
    state = {k[len('module.'):] if k.startswith('module.') else k: v
             for k, v in state.items()}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected)
                   if hasattr(state[k], 'shape')
                   and tuple(state[k].shape) != tuple(expected[k].shape))
    if not (missing or unexpected or wrong):
        return
    parts = [f'{len(keys)} {what} (e.g. {keys[:examples]})'
             for what, keys in (('missing keys', missing),
                                ('unexpected keys', unexpected),
                                ('keys of another shape', wrong)) if keys]
    raise CheckpointMismatch(
        f'{checkpoint} does not fit the model: {"; ".join(parts)}. Is it a '
        'checkpoint of this config? Pass --allow-partial to evaluate anyway')


def check_variant(model, checkpoint: str, allow_other: bool = False,
                  log: Callable[[str], None] = print) -> None:
    """Raise CheckpointMismatch if ``checkpoint`` records attention layers
    of another variant than ``model``'s (naming each difference), unless
    ``allow_other``; a checkpoint without the record is named in a
    warning."""
    record = checkpoint_record(checkpoint)
    if record is None or not isinstance(record.get('attention'), dict):
        log(f'[test] WARNING: {checkpoint} has no record of its attention '
            'variant (written before qkv_plugins recorded it, or by another '
            'tool): the config\'s variant is assumed, not checked')
        return
    found = variant_differences(attention_record(model), record['attention'])
    if found and not allow_other:
        raise CheckpointMismatch(
            f'{checkpoint} was trained as another attention variant than '
            f'the config builds: {"; ".join(found)}. Pass '
            '--allow-other-variant to evaluate it anyway')
    for difference in found:
        log(f'[test] WARNING: evaluating another variant: {difference}')


def test(config: Union[str, Config],
         checkpoint: str,
         *,
         cfg_options: Optional[dict] = None,
         work_dir: Optional[str] = None,
         launcher: str = 'none',
         diagnostics: Union[bool, dict] = False,
         allow_partial: bool = False,
         allow_other_variant: bool = False,
         logit_transform: Optional[str] = None,
         log: Callable[[str], None] = print) -> dict:
    """Evaluate ``checkpoint`` on the config's test set; return the metrics.

    ``checkpoint`` None evaluates the model as the config's seed
    initialises it. ``diagnostics``: True, or the
    ``AttentionDiagnosticsHook`` arguments as a dict, to write attention
    diagnostics to the work dir. ``logit_transform``: a test-time
    intervention on every attention layer's logits
    (:func:`~qkv_plugins.layers.similarity.set_logit_transform`). A
    checkpoint that does not fit the model raises CheckpointMismatch
    (unless ``allow_partial``) before anything is evaluated, and so does
    one whose recorded attention variant (``qkv_mode``, ``similarity``,
    ``mask_self``, ``num_heads``, ...) differs from the config's (unless
    ``allow_other_variant``); a checkpoint without that record is named as
    such and evaluated.
    """
    from .layers.similarity import LOGIT_TRANSFORMS, set_logit_transform
    if logit_transform not in LOGIT_TRANSFORMS:
        raise ValueError(f'logit_transform must be one of '
                         f'{list(LOGIT_TRANSFORMS)}, but got '
                         f'{logit_transform!r}')
    hook = ({} if diagnostics is True else dict(diagnostics or {}))
    runner = build_runner(
        config, cfg_options=cfg_options, work_dir=work_dir,
        launcher=launcher, load_from=checkpoint,
        extra_hooks=[dict(type='AttentionDiagnosticsHook', **hook)]
        if diagnostics else ())
    if checkpoint is None:
        # as training starts: the config's initialisation under its seed
        # (the Runner calls init_weights in train(), not in test())
        from mmengine.model import is_model_wrapper
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        model.init_weights()
    else:
        if not allow_partial:
            check_checkpoint_fits(runner.model, checkpoint)
        check_variant(runner.model, checkpoint, allow_other_variant, log)
    if logit_transform is not None and not set_logit_transform(
            runner.model, logit_transform):
        raise ValueError(f'logit_transform={logit_transform!r}: the model '
                         'has no attention layer whose logits it could '
                         'change')
    return runner.test()
