"""Turn recorded attention weights into [B, Q, K] maps with own-key indices.

Non-local weights are [B, heads, N, N] (heads are folded into the batch);
criss-cross weights are [B, H, W, H + W] per hop, whose column part holds a
structural zero at the query's own row (its own position is counted in the
row part): it is dropped, leaving the H + W - 1 keys a query really sees.
Queries are subsampled to at most ``max_queries`` (evenly spaced) so memory
stays bounded on large maps.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor


def query_subset(num: int, max_queries: int,
                 device=None) -> Tensor:
    """At most ``max_queries`` evenly spaced indices in ``range(num)``."""
    if num <= max_queries:
        return torch.arange(num, device=device)
    return torch.linspace(0, num - 1, max_queries,
                          device=device).round().long().unique()


def non_local_maps(weights: Tensor, max_queries: int
                   ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """(maps [B·heads, Q, N], own [Q], square [B·heads, Q, Q] sub-matrix of
    the sampled queries as keys, for asymmetry)."""
    maps = weights.flatten(0, -3)  # [B·heads, N, N]
    queries = query_subset(maps.shape[-2], max_queries, maps.device)
    sampled = maps[:, queries]
    return sampled, queries, sampled[:, :, queries]


def criss_cross_maps(weights: Tensor, max_queries: int
                     ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """(maps [B, Q, H + W - 1], own [Q], dense square [B, Q, Q] among the
    sampled queries or None when H·W > max_queries)."""
    batch, height, width, _ = weights.shape
    n = height * width
    rows = torch.arange(height, device=weights.device)
    # key indices per query (h, w): column keys i != h, then all row keys
    col = rows[None, :].expand(height, height)
    col = col[~torch.eye(height, dtype=torch.bool, device=weights.device)]
    col = col.view(height, height - 1)  # [H, H - 1]
    row = height + torch.arange(width, device=weights.device)  # [W]
    index = torch.cat([
        col[:, None, :].expand(height, width, height - 1),
        row[None, None, :].expand(height, width, width)
    ], dim=-1)  # [H, W, H + W - 1]
    maps = weights.gather(-1, index.expand(batch, -1, -1, -1))
    maps = maps.view(batch, n, height + width - 1)
    own = (height - 1 + torch.arange(width, device=weights.device)).repeat(
        height)  # [N]: own position is row key w
    queries = query_subset(n, max_queries, weights.device)
    square = None
    if n <= max_queries:
        square = dense_cross(weights)
    return maps[:, queries], own[queries], square


def dense_cross(weights: Tensor) -> Tensor:
    """The N × N matrix of criss-cross weights (zeros off the cross)."""
    batch, height, width, _ = weights.shape
    dense = weights.new_zeros(batch, height, width, height, width)
    h = torch.arange(height, device=weights.device)
    w = torch.arange(width, device=weights.device)
    # column keys (i, w) for query (h, w)
    dense[:, h[:, None, None], w[None, :, None], h[None, None, :],
          w[None, :, None]] = weights[..., :height]
    # row keys (h, j) for query (h, w); the own position lands here
    dense[:, h[:, None, None], w[None, :, None], h[:, None, None],
          w[None, None, :]] += weights[..., height:]
    return dense.view(batch, height * width, height * width)
