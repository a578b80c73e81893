"""Statistics of attention maps: does a position just attend to itself?

Every function takes row-stochastic weights ``A`` of shape [..., Q, K] (each
query's weights over its keys sum to 1); ``own`` gives, per query, the index
of its own position among its keys. Values are means over all leading
dimensions and queries.
"""
import math
from typing import Optional

import torch
from torch import Tensor

# Statistics and pictures that need the dense N × N map (own key over
# objects, source mass, composed criss-cross hops) are taken only up to this
# many positions.
MAX_DENSE_POSITIONS = 4096


def self_affinity(weights: Tensor, own: Tensor) -> Tensor:
    """Mean weight a position gives itself."""
    return _own_weight(weights, own).mean()


def scaled_self_affinity(weights: Tensor, own: Tensor) -> Tensor:
    """Self-affinity × number of keys: 1.0 is uniform attention."""
    return self_affinity(weights, own) * weights.shape[-1]


def self_top1(weights: Tensor, own: Tensor) -> Tensor:
    """Share of queries whose highest-weighted key is their own position."""
    return (weights.argmax(-1) == own).float().mean()


def normalized_entropy(weights: Tensor) -> Tensor:
    """Entropy of each query's weights / log(keys): 0 one-hot, 1 uniform."""
    keys = weights.shape[-1]
    if keys == 1:
        return weights.new_zeros(())
    entropy = -(weights * weights.clamp_min(1e-30).log()).sum(-1)
    return (entropy / math.log(keys)).mean()


def asymmetry(weights: Tensor) -> Tensor:
    """‖A − Aᵀ‖ / ‖A‖ (Frobenius) of square maps: 0 for symmetric A."""
    if weights.shape[-1] != weights.shape[-2]:
        raise ValueError('asymmetry needs square maps [..., N, N], got '
                         f'{tuple(weights.shape)}')
    diff = (weights - weights.transpose(-1, -2)).flatten(-2).norm(dim=-1)
    return (diff / weights.flatten(-2).norm(dim=-1)).mean()


def logit_asymmetry(weights: Tensor) -> Tensor:
    """Asymmetry of the logits behind square row-softmax maps.

    ``‖C − Cᵀ‖ / ‖C‖`` over off-diagonal entries, ``C = J · log A · J``
    (J the centring matrix): double centring removes softmax's per-row
    shift, so C is the centred logits, and 0 (up to rounding) for a
    symmetric score such as Q = K. A masked diagonal (weight 0) is filled
    with its row's mean off-diagonal log-weight, which keeps that property.
    NaN where the centred logits vanish (query-independent maps), and where
    an off-diagonal weight is exactly 0: softmax underflowed there (logit
    spreads beyond ~100 in float32), so the log-weights are not the logits.
    """
    n = weights.shape[-1]
    if n < 2:
        return weights.new_tensor(math.nan)
    eye = torch.eye(n, dtype=torch.bool, device=weights.device)
    if bool((weights[..., ~eye] == 0).any()):
        return weights.new_tensor(math.nan)
    log_w = weights.double().clamp_min(1e-300).log()
    if bool((weights.diagonal(dim1=-2, dim2=-1) == 0).all()):  # masked
        off_mean = log_w.masked_fill(eye, 0).sum(-1, keepdim=True) / (n - 1)
        log_w = torch.where(eye, off_mean.expand_as(log_w), log_w)
    centred = (log_w - log_w.mean(-1, keepdim=True) -
               log_w.mean(-2, keepdim=True) +
               log_w.mean((-2, -1), keepdim=True))
    off = ~eye
    scale = centred[..., off].norm()
    if scale <= 1e-9 * log_w[..., off].norm():
        return weights.new_tensor(math.nan)
    return ((centred - centred.transpose(-1, -2))[..., off].norm() /
            scale).to(weights.dtype)


def query_independence(weights: Tensor) -> Tensor:
    """Mean cosine distance between the maps of different queries (GCNet's
    measure): near 0 when every query attends alike."""
    queries = weights.shape[-2]
    if queries < 2:
        return weights.new_zeros(())
    unit = torch.nn.functional.normalize(weights, dim=-1)
    cosine = unit @ unit.transpose(-1, -2)  # [..., Q, Q]
    off_diagonal = cosine.sum((-1, -2)) - cosine.diagonal(
        dim1=-2, dim2=-1).sum(-1)
    return (1 - off_diagonal / (queries * (queries - 1))).mean()


def mass_on(weights: Tensor, targets: Tensor,
            valid: Optional[Tensor] = None) -> Tensor:
    """Mean attention mass each query puts on its target keys.

    Args:
        weights: [..., Q, K].
        targets: bool [..., Q, K], the keys a query should look at (e.g. the
            pixels of the object its label comes from).
        valid: bool [..., Q], queries to average over (default: those with
            at least one target).
    """
    mass = (weights * targets).sum(-1)
    if valid is None:
        valid = targets.any(-1)
    return mass[valid].mean() if valid.any() else weights.new_tensor(
        float('nan'))


def _own_weight(weights: Tensor, own: Tensor) -> Tensor:
    index = own.expand(weights.shape[:-1]).unsqueeze(-1)
    return weights.gather(-1, index).squeeze(-1)


def summarize(weights: Tensor, own: Tensor) -> dict:
    """All statistics that need no ground truth, as floats."""
    out = dict(
        self_affinity=self_affinity(weights, own),
        scaled_self_affinity=scaled_self_affinity(weights, own),
        self_top1=self_top1(weights, own),
        entropy=normalized_entropy(weights),
        query_independence=query_independence(weights))
    if weights.shape[-1] == weights.shape[-2]:
        out['asymmetry'] = asymmetry(weights)
    return {k: float(v) for k, v in out.items()}
