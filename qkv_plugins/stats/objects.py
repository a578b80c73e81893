"""Attention over the objects of an image: a position's own key apart over
object and background queries, and the cyclic track's source mass.

Pure functions of dense maps [B, N, N] and per-cell maps [B, N]; the caller
(the diagnostics hook) reads the label and object maps and says which label
is ignored and which object is each object's source.
"""
from typing import Dict, List

import numpy as np
import torch

from .diagnostics import mass_on


def grid_cells(maps: List[np.ndarray], height: int,
               width: int) -> torch.Tensor:
    """Each map sampled (nearest) at the centres of a height × width grid of
    feature cells: [B, N] int64."""
    cells = []
    for array in maps:
        ys = ((np.arange(height) + 0.5) * array.shape[0] / height).astype(int)
        xs = ((np.arange(width) + 0.5) * array.shape[1] / width).astype(int)
        cells.append(torch.from_numpy(array[ys][:, xs].astype(np.int64)))
    return torch.stack(cells).flatten(1)


def object_stats(dense: torch.Tensor, labels: torch.Tensor, keys: int,
                 ignore_index: int) -> Dict[str, float]:
    """A position's own key over object (labelled) and background query
    positions: the share whose top-1 key it is, and its weight × keys.

    Args:
        dense: Attention maps [B, N, N].
        labels: Label of each query cell [B, N] (:func:`grid_cells`).
        keys: Keys per query of the layer's own maps (the scale of the
            weight: 1 is uniform attention).
        ignore_index: The label of unlabelled (background) pixels.
    """
    own = dense.diagonal(dim1=-2, dim2=-1)  # [B, N]
    top1 = dense.argmax(-1) == torch.arange(dense.shape[-1])  # [B, N]
    labelled = labels != ignore_index
    out = {}
    for suffix, where in (('obj', labelled), ('bg', ~labelled)):
        if where.any():
            out[f'self_top1_{suffix}'] = float(top1[where].float().mean())
            out[f'scaled_self_affinity_{suffix}'] = float(
                own[where].mean() * keys)
    return out


def source_mass(dense: torch.Tensor, obj: torch.Tensor,
                source: torch.Tensor) -> Dict[str, float]:
    """Cyclic track: the attention mass that object pixels put on the object
    their label comes from, and what uniform attention would put there,
    over the image (``source_mass_chance_image``) or over the three objects
    (``source_mass_chance_objects``).

    Args:
        dense: Attention maps [B, N, N].
        obj: Object id of each cell [B, N] (0: no object).
        source: Id of the object each cell's label comes from [B, N].
    """
    targets = (obj[:, :, None] > 0) & (obj[:, None, :] == source[:, :, None])
    valid = targets.any(-1)  # object queries whose source is on the grid
    if not valid.any():
        return {}
    sizes = targets.sum(-1).float()  # [B, N] source cells per query
    objects = (obj > 0).sum(-1, keepdim=True).float()  # [B, 1]
    return dict(
        source_mass=float(mass_on(dense, targets)),
        source_mass_chance_image=float((sizes / obj.shape[-1])[valid].mean()),
        source_mass_chance_objects=float(
            (sizes / objects.clamp_min(1))[valid].mean()))
