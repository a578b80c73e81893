"""Attention diagnostics on validation (and test) batches."""
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from PIL import Image
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from ..io import write_text_atomic
from ..layers.catalog import entry_for
from ..layers.recording import (attention_layers, start_recording,
                                stop_recording)
from ..stats.diagnostics import (asymmetry, logit_asymmetry, mass_on,
                                 summarize)
from ..study.synthetic import source_of
from ..workdir import DIAGNOSTICS_FILE

# Source-object mass needs the dense N × N map: skipped above this size.
MAX_DENSE_POSITIONS = 4096


@HOOKS.register_module()
class AttentionDiagnosticsHook(Hook):
    """Records every QKV layer's attention on validation/test batches (the
    layers' explicit path) and writes per-layer means of
    :func:`qkv_plugins.stats.diagnostics.summarize` to
    ``<work_dir>/attention_diagnostics.json``; criss-cross statistics are per
    hop. On the cyclic track (object maps in ``obj_dir``) it also records
    ``source_mass``: the attention mass that object pixels put on the object
    their label comes from.

    Args:
        max_queries: Queries sampled per map (evenly spaced), bounding memory.
        max_batches: Batches per evaluation to analyse (None: all).
    """

    priority = 'NORMAL'

    def __init__(self, max_queries: int = 1024,
                 max_batches: Optional[int] = 8) -> None:
        self.max_queries = max_queries
        self.max_batches = max_batches
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
        for name, layer, entry in self._layers:
            hops = entry.hops(layer)
            for index, weights in enumerate(stop_recording(layer)):
                key = f'{name}/hop{index % hops}' if entry.per_hop else name
                self._accumulate(key, weights, entry, objects)

    @torch.no_grad()
    def _accumulate(self, key, weights, entry, objects) -> None:
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
        if objects is not None:
            source = _source_mass(weights, entry, objects)
            if source is not None:
                stats['source_mass'] = source
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
        if runner.rank == 0 and result:
            write_text_atomic(f'{runner.work_dir}/{DIAGNOSTICS_FILE}',
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
    """Object-id maps of the batch's images (``obj_dir`` beside
    ``img_dir``, cyclic track), or None where there are none."""
    samples = (data_batch or {}).get('data_samples') or []
    maps = []
    for sample in samples:
        path = Path(str(sample.metainfo.get('img_path', '')).replace(
            f'{os.sep}img_dir{os.sep}', f'{os.sep}obj_dir{os.sep}'))
        if not path.is_file() or 'obj_dir' not in path.parts:
            return None
        maps.append(np.asarray(Image.open(path)))
    return maps or None


def _source_mass(weights, entry, objects) -> Optional[float]:
    """Mean attention mass that object pixels put on the object their label
    comes from (cyclic track), on the full N × N map."""
    height, width = entry.grid(weights, objects[0].shape)
    if height * width > MAX_DENSE_POSITIONS:
        return None
    dense = entry.dense(weights)  # [B, N, N]
    cells = []
    for obj in objects:  # nearest sample at each feature cell's centre
        ys = ((np.arange(height) + 0.5) * obj.shape[0] / height).astype(int)
        xs = ((np.arange(width) + 0.5) * obj.shape[1] / width).astype(int)
        cells.append(torch.from_numpy(obj[ys][:, xs].astype(np.int64)))
    obj = torch.stack(cells).flatten(1)  # [B, N]
    source = torch.from_numpy(source_of(obj.numpy()))
    targets = (obj[:, :, None] > 0) & (obj[:, None, :] == source[:, :, None])
    if not targets.any():
        return None
    return float(mass_on(dense, targets))
