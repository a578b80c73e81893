"""Pictures of attention maps: chosen query pixels and where they look.

A layer's recorded weights become dense [N, N] maps through its catalog
entry (heads averaged); a layer that records several hops per forward
(criss-cross) is shown as the field after all of them, ``(A_r ⋯ A_1)[q]``
(residual paths and gamma left out).
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np
from torch import Tensor

from ..layers.catalog import LayerEntry
from .diagnostics import MAX_DENSE_POSITIONS


def query_field(hops: List[Tensor], entry: LayerEntry, query: Tuple[int, int],
                feature_shape: Tuple[int, int]) -> np.ndarray:
    """[h, w] attention of the query at feature cell ``query`` (first image
    of the batch), from the weights one forward recorded."""
    h, w = feature_shape
    index = query[0] * w + query[1]
    if len(hops) > 1 and h * w > MAX_DENSE_POSITIONS:
        # composing hops needs dense N × N matrices: hop 1 only beyond
        hops = hops[:1]
    field = None
    for hop in hops:
        dense = entry.dense(hop[:1])[0]  # [N, N]
        field = dense if field is None else dense @ field
    return field[index].view(h, w).numpy()


def draw(image: np.ndarray, queries: Sequence[Tuple[int, int]],
         variants: Dict[str, Tuple[str, List[Tensor], Tuple[int, int]]],
         path: str) -> None:
    """Grid, one row per variant: the input with marked queries, then each
    query's field over the image. ``variants``: label -> (catalog entry,
    weights of one forward, feature shape (h, w) of the layer's input)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from ..io import atomic_path
    height, width = image.shape[:2]
    rows, cols = len(variants), len(queries) + 1
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.6 * rows),
                             squeeze=False)
    colours = plt.cm.tab10.colors
    for r, (label, (entry, hops, feature_shape)) in enumerate(
            variants.items()):
        ax = axes[r][0]
        ax.imshow(image)
        for i, (y, x) in enumerate(queries):
            ax.scatter([x], [y], s=60, c=[colours[i % 10]], marker='x')
        ax.set_ylabel(label, fontsize=8)
        for i, (y, x) in enumerate(queries):
            cell = (min(int(y * feature_shape[0] / height),
                        feature_shape[0] - 1),
                    min(int(x * feature_shape[1] / width),
                        feature_shape[1] - 1))
            field = query_field(hops, entry, cell, feature_shape)
            ax = axes[r][i + 1]
            ax.imshow(image, alpha=0.45)
            ax.imshow(field, cmap='magma', alpha=0.6,
                      extent=(0, width, height, 0), interpolation='nearest')
            ax.scatter([x], [y], s=60, c=[colours[i % 10]], marker='x')
            if r == 0:
                ax.set_title(f'query ({y}, {x})', fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=100)
    plt.close(fig)
