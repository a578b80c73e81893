"""The few fixes the pinned stack needs (checkpoint loading on torch >= 2.6,
weights-only loading on every checkpoint scheme, atomic checkpoints,
distributed training on CPU)."""
from .checkpoint import (allow_mmengine_checkpoints, atomic_checkpoint_saving,
                         checkpoint_problem, find_resumable_checkpoint,
                         no_follow_pointer)
from .safe_loading import enforce_weights_only
from .distributed import (adapt_config_for_cpu, patch_cpu_distributed,
                          sync_bn_to_bn)

__all__ = [
    'allow_mmengine_checkpoints', 'enforce_weights_only',
    'atomic_checkpoint_saving',
    'checkpoint_problem', 'find_resumable_checkpoint', 'no_follow_pointer',
    'adapt_config_for_cpu',
    'patch_cpu_distributed', 'sync_bn_to_bn'
]
