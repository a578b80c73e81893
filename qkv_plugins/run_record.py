"""What a run is, recorded where it can be checked later: the run's
identity and seed (so that ``--resume`` never mixes two runs) and every
attention layer's options (so that ``tools/test.py`` never scores a
checkpoint with another variant of the same keys), in each checkpoint's
``meta``. Plain JSON values: reading the record never executes anything
(mmengine's own ``meta['cfg']`` is config text, which would)."""
from typing import Dict, List, Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

from .layers.recording import attention_layers, layer_options

RECORD_KEY = 'qkv_run'


def attention_record(model: torch.nn.Module) -> Dict[str, dict]:
    """{module name: type and options} of every attention layer."""
    model = model.module if is_model_wrapper(model) else model
    return {name: layer_options(layer)
            for name, layer in attention_layers(model)}


@HOOKS.register_module()
class RunRecordHook(Hook):
    """Writes the run's identity, fingerprint, seed and attention options
    into every checkpoint's ``meta['qkv_run']`` (``tools/train.py`` adds it
    to every run; it changes no fingerprint)."""

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[RECORD_KEY] = dict(
            identity=runner.cfg.get('run_identity'),
            fingerprint=runner.cfg.get('run_fingerprint'),
            seed=runner.seed,
            attention=attention_record(runner.model))


def checkpoint_meta(path: str) -> dict:
    """A checkpoint's ``meta`` (weights-only loading; {} if it has none)."""
    loaded = torch.load(path, map_location='cpu', weights_only=True)
    meta = loaded.get('meta') if isinstance(loaded, dict) else None
    return meta if isinstance(meta, dict) else {}


def checkpoint_record(path: str) -> Optional[dict]:
    """The record a checkpoint carries, None for one written without it."""
    record = checkpoint_meta(path).get(RECORD_KEY)
    return record if isinstance(record, dict) else None


def variant_differences(expected: Dict[str, dict],
                        recorded: Dict[str, dict]) -> List[str]:
    """Where the model's attention layers differ from a checkpoint's record:
    ``name: option config-value (config) vs checkpoint-value (checkpoint)``;
    layers present on one side only are named too."""
    found = []
    for name in sorted(set(expected) | set(recorded)):
        if name not in recorded:
            found.append(f'{name}: in the config, not in the checkpoint')
            continue
        if name not in expected:
            found.append(f'{name}: in the checkpoint, not in the config')
            continue
        mine, theirs = expected[name], recorded[name]
        for option in sorted(set(mine) | set(theirs)):
            if mine.get(option) != theirs.get(option):
                found.append(f'{name}: {option} {mine.get(option)!r} '
                             f'(config) vs {theirs.get(option)!r} '
                             '(checkpoint)')
    return found
