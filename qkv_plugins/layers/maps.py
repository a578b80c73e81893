"""Recorded dense attention weights as maps for the statistics: the catalog
functions of every layer whose weights are [B, heads, N, N] over all
positions (non-local, disentangled, global context).

Queries are subsampled to at most ``max_queries`` (evenly spaced) so memory
stays bounded on large maps.
"""
from typing import Optional, Tuple

import torch
from torch import Tensor


def query_subset(num: int, max_queries: int, device=None) -> Tensor:
    """At most ``max_queries`` evenly spaced indices in ``range(num)``."""
    if num <= max_queries:
        return torch.arange(num, device=device)
    return torch.linspace(0, num - 1, max_queries,
                          device=device).round().long().unique()


def dense_maps(weights: Tensor, max_queries: int
               ) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """(maps [B·heads, Q, N], own [Q], square [B·heads, Q, Q] sub-matrix of
    the sampled queries as keys, for asymmetry)."""
    maps = weights.flatten(0, -3)  # [B·heads, N, N]
    queries = query_subset(maps.shape[-2], max_queries, maps.device)
    sampled = maps[:, queries]
    return sampled, queries, sampled[:, :, queries]


def dense_matrix(weights: Tensor) -> Tensor:
    """[B, heads, N, N] -> [B, N, N], heads averaged."""
    return weights.float().mean(1)


def dense_grid(weights: Tensor, image: Tuple[int, int]) -> Tuple[int, int]:
    """The (h, w) grid of N = h·w positions with the image's aspect."""
    n = weights.shape[-1]
    height = max(1, int(round((n * image[0] / image[1])**0.5)))
    return height, n // height


def dense_macs(batch: int, queries: int, keys: int, qk_channels: int,
               v_channels: int) -> int:
    """Multiply-adds of scores (Q·K) and weighted sum (W·V)."""
    return batch * queries * keys * (qk_channels + v_channels)
