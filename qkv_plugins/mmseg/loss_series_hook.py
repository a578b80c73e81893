"""The training loss of every iteration, to the last bit: the fingerprint of
what a run computed (two runs of the same config and seed that give the
same series trained the same model)."""
import hashlib
import json
from typing import List

import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..io import write_text_atomic
from ..workfiles import LOSS_SERIES_FILE


def loss_sha256(losses: List[str]) -> str:
    """SHA-256 of a loss series (one ``float.hex`` per iteration)."""
    return hashlib.sha256('\n'.join(losses).encode()).hexdigest()


@HOOKS.register_module()
class LossSeriesHook(Hook):
    """Records each iteration's total loss exactly (``float.hex`` of the
    float32 value, rank 0's on a distributed run) and writes
    ``loss_series.json`` (``losses``, ``iters``, ``sha256``) to the work dir
    at every checkpoint and at the end. The series travels in the
    checkpoints, so a resumed run continues it.
    """

    # before CheckpointHook (VERY_LOW): a checkpoint must carry the loss of
    # the iteration it is saved at, or a resumed series lacks it
    priority = 'NORMAL'

    def __init__(self) -> None:
        self.losses: List[str] = []

    def before_train(self, runner) -> None:
        # a resumed run keeps the series up to its iteration (after_load_
        # checkpoint brought it); a fresh one starts empty
        self.losses = self.losses[:runner.iter]

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        loss = (outputs or {}).get('loss')
        if isinstance(loss, torch.Tensor):
            loss = loss.detach()
        self.losses.append(float(loss).hex() if loss is not None else 'nan')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['loss_series'] = list(self.losses)
        self._write(runner)

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        series = checkpoint.get('loss_series')
        self.losses = list(series) if isinstance(series, list) else []

    def after_train(self, runner) -> None:
        self._write(runner)

    def _write(self, runner) -> None:
        if runner.rank != 0:
            return
        write_text_atomic(
            f'{runner.work_dir}/{LOSS_SERIES_FILE}',
            json.dumps(dict(iters=len(self.losses),
                            sha256=loss_sha256(self.losses),
                            losses=self.losses)))
