"""Attention diagnostics on validation (and test) batches."""
import json
from collections import defaultdict
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from ..data import IGNORE_INDEX, object_map, source_of
from ..io import write_text_atomic
from ..layers.catalog import entry_for
from ..layers.recording import (attention_layers, start_recording,
                                stop_recording)
from ..stats.diagnostics import (MAX_DENSE_POSITIONS, asymmetry,
                                 logit_asymmetry, summarize)
from ..stats.objects import grid_cells, object_stats, source_mass
from ..workfiles import DIAGNOSTICS_FILE


@HOOKS.register_module()
class AttentionDiagnosticsHook(Hook):
    """Records every QKV layer's attention on validation/test batches (the
    layers' explicit path) and writes per-layer means of
    :func:`qkv_plugins.stats.diagnostics.summarize` to
    ``<work_dir>/attention_diagnostics.json``; criss-cross statistics are per
    hop. On the cyclic track (object maps in ``obj_dir``) it also records
    ``source_mass``: the attention mass that object pixels put on the object
    their label comes from, with its chance references.

    Where the dense map is small enough, statistics of a position's own key
    are also taken apart over labelled (object) and unlabelled (background)
    query positions: ``self_top1_obj``/``_bg``, ``scaled_self_affinity_obj``
    /``_bg``, with ``self_top1_chance`` (1 / keys; the scaled affinity's
    chance is 1).

    Args:
        max_queries: Queries sampled per map (evenly spaced), bounding memory.
        max_batches: Batches per evaluation to analyse (None: all).
        lift_mask: Evaluate with every layer's ``mask_self`` off (restored
            afterwards): what a masked model's logits give a position's own
            key. The model's outputs change too; its metrics are not its own.
        out_file: File name in the work dir.
    """

    priority = 'NORMAL'

    def __init__(self, max_queries: int = 1024,
                 max_batches: Optional[int] = 8,
                 lift_mask: bool = False,
                 out_file: str = DIAGNOSTICS_FILE) -> None:
        self.max_queries = max_queries
        self.max_batches = max_batches
        self.lift_mask = lift_mask
        self.out_file = out_file
        self._lifted: List = []
        self._layers: List = []
        self._sums: Dict[str, Dict[str, float]] = {}
        self._counts: Dict[str, int] = {}
        self._batches = 0

    def _model_layers(self, runner):
        """(name, layer, catalog entry) of every recording layer; a layer
        the catalog does not know raises UnknownLayer."""
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        return [(name, m, entry_for(m)) for name, m in attention_layers(model)]

    def _reset(self, runner) -> None:
        self._layers = self._model_layers(runner)
        if self.lift_mask:
            self._lifted = [m for _, m, _ in self._layers
                            if getattr(m, 'mask_self', False)]
            for layer in self._lifted:
                layer.mask_self = False
        self._sums = defaultdict(lambda: defaultdict(float))
        self._counts = defaultdict(int)
        self._batches = 0

    def _begin_batch(self) -> None:
        active = self.max_batches is None or self._batches < self.max_batches
        for _, layer, _ in self._layers:
            if active:
                start_recording(layer)

    def _end_batch(self, data_batch=None) -> None:
        self._batches += 1
        objects = _object_maps(data_batch)
        labels = _label_maps(data_batch)
        for name, layer, entry in self._layers:
            hops = entry.hops(layer)
            for index, weights in enumerate(stop_recording(layer)):
                key = f'{name}/hop{index % hops}' if entry.per_hop else name
                self._accumulate(key, weights, entry, objects, labels)

    @torch.no_grad()
    def _accumulate(self, key, weights, entry, objects, labels) -> None:
        maps, own, square = entry.maps(weights, self.max_queries)
        stats = summarize(maps.float(), own)
        stats.pop('asymmetry', None)
        if square is not None:
            stats['asymmetry'] = float(asymmetry(square.float()))
            # of the logits: 0 for symmetric scores, whatever softmax does
            # to the weights; n/a (absent) for query-independent maps
            logit = float(logit_asymmetry(square))
            if logit == logit:
                stats['logit_asymmetry'] = logit
        stats['self_top1_chance'] = 1.0 / maps.shape[-1]
        reference = labels if labels is not None else objects
        if reference is not None:
            height, width = entry.grid(weights, reference[0].shape)
            if height * width <= MAX_DENSE_POSITIONS:
                # [B, N, N], beside the label cells (numpy-made, on CPU)
                dense = entry.dense(weights).cpu()
                keys = maps.shape[-1]
                if labels is not None:
                    stats.update(object_stats(
                        dense, grid_cells(labels, height, width), keys,
                        IGNORE_INDEX))
                if objects is not None:
                    obj = grid_cells(objects, height, width)  # [B, N]
                    source = torch.from_numpy(source_of(obj.numpy()))
                    stats.update(source_mass(dense, obj, source))
        for stat, value in stats.items():
            self._sums[key][stat] += value
            self._counts[f'{key}/{stat}'] += 1

    def _write(self, runner) -> None:
        result = {
            key: {s: v / self._counts[f'{key}/{s}'] for s, v in sums.items()}
            for key, sums in self._sums.items()
        }
        for _, layer, _ in self._layers:
            stop_recording(layer)
        for layer in self._lifted:
            layer.mask_self = True
        self._lifted = []
        if runner.rank == 0 and result:
            write_text_atomic(f'{runner.work_dir}/{self.out_file}',
                              json.dumps(result, indent=1))

    def before_val_epoch(self, runner) -> None:
        self._reset(runner)

    def before_val_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._begin_batch()

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None) -> None:
        self._end_batch(data_batch)

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._write(runner)

    before_test_epoch = before_val_epoch

    def before_test_iter(self, runner, batch_idx, data_batch=None) -> None:
        self._begin_batch()

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        self._end_batch(data_batch)

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._write(runner)


def _object_maps(data_batch) -> Optional[List[np.ndarray]]:
    """Object-id maps of the batch's images (cyclic track), or None where
    there are none."""
    samples = (data_batch or {}).get('data_samples') or []
    maps = []
    for sample in samples:
        array = object_map(sample.metainfo.get('img_path', ''))
        if array is None:
            return None
        maps.append(array)
    return maps or None


def _label_maps(data_batch) -> Optional[List[np.ndarray]]:
    """Ground-truth label maps of the batch ([H, W] each), or None."""
    samples = (data_batch or {}).get('data_samples') or []
    maps = []
    for sample in samples:
        seg = getattr(sample, 'gt_sem_seg', None)
        if seg is None:
            return None
        maps.append(seg.data.squeeze(0).cpu().numpy())
    return maps or None
