"""How a query scores a key: scaled dot product or cosine with a learnt scale."""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .kernels import at_least_fp32
from .options import (SIMILARITIES, check_bool, check_choice,
                      check_positive_int)

# Cosine logits are s * cos(q, k) with s = exp(logit_scale), as in CLIP and
# Swin V2: initialised at 10, never above 100 (or above a larger initial
# scale a layer asks for: the clamp never pulls the start down).
COSINE_INIT_SCALE = 10.0
COSINE_MAX_SCALE = 100.0


def _as_trained(q: Tensor, k: Tensor, scale: float, dim: int):
    return q, k, scale


def _square(q: Tensor, k: Tensor, how: str) -> None:
    """Raise a ValueError unless keys sit at the queries' positions (Sᵀ
    needs a square S; reduced keys, SegFormer's, give none)."""
    if q.shape != k.shape:
        raise ValueError(f'logit_transform={how!r} needs one key per query '
                         f'position, but got queries {tuple(q.shape)} and '
                         f'keys {tuple(k.shape)}')


def _symmetric(q: Tensor, k: Tensor, scale: float, dim: int):
    # (S + Sᵀ) / 2 with S = s·q kᵀ: [q, k] · [k, q]ᵀ = q kᵀ + k qᵀ, halved;
    # no N×N matrix, so every path (fused ones too) takes it
    _square(q, k, 'symmetric')
    return torch.cat([q, k], dim), torch.cat([k, q], dim), scale / 2


def _transpose(q: Tensor, k: Tensor, scale: float, dim: int):
    # Sᵀ: query i scores key j as query j scored key i
    _square(q, k, 'transpose')
    return k, q, scale


# Test-time interventions on a trained model's logits S (off by default):
# what it loses when its scores are made symmetric or turned around.
LOGIT_TRANSFORMS = {
    None: _as_trained,
    'symmetric': _symmetric,
    'transpose': _transpose,
}


class Similarity(nn.Module):
    """Prepares Q and K so that ``scale * (q · k)`` is the attention logit.

    Args:
        similarity: ``'dot'`` or ``'cosine'``.
        use_scale: With ``'dot'``, scale logits by 1/√(channels per head).
        channels_per_head: Q/K channels that one head's dot product sums.
        cosine_init_scale: With ``'cosine'``, the learnt scale's initial value
            (None: :data:`COSINE_INIT_SCALE`). The scale is clamped at
            ``max(COSINE_MAX_SCALE, cosine_init_scale)``.
        num_heads: With ``'cosine'``, learn one scale per head
            (``logit_scale`` [num_heads, 1, 1], for Q and K laid out
            [B, heads, N, C] with ``dim=-1``: token attention, Swin V2);
            None: one scale for all heads (a 0-d ``logit_scale``).
    """

    def __init__(self, similarity: str, use_scale: bool,
                 channels_per_head: int,
                 cosine_init_scale: Optional[float] = None,
                 num_heads: Optional[int] = None) -> None:
        super().__init__()
        self.kind = check_choice('similarity', similarity, SIMILARITIES)
        self.logit_transform: Optional[str] = None  # see set_logit_transform
        check_bool('use_scale', use_scale)
        if cosine_init_scale is None:
            cosine_init_scale = COSINE_INIT_SCALE
        elif (isinstance(cosine_init_scale, bool)
              or not isinstance(cosine_init_scale, (int, float))
              or not 0 < cosine_init_scale < math.inf):
            raise ValueError('cosine_init_scale must be a positive finite number, '
                             f'but got {cosine_init_scale!r}')
        self.max_logit_scale = math.log(max(COSINE_MAX_SCALE, cosine_init_scale))
        shape = () if num_heads is None else (
            check_positive_int('num_heads', num_heads), 1, 1)
        if similarity == 'cosine':
            self.logit_scale = nn.Parameter(
                torch.full(shape, math.log(cosine_init_scale)))
            self.scale = 1.0
        else:
            self.logit_scale = None
            self.scale = channels_per_head**-0.5 if use_scale else 1.0

    def forward(self, q: Tensor, k: Tensor,
                dim: int) -> Tuple[Tensor, Tensor, float]:
        """Return ``(q, k, scale)``; channels run along ``dim``."""
        transform = LOGIT_TRANSFORMS[self.logit_transform]
        if self.logit_scale is None:
            return transform(q, k, self.scale, dim)
        # Normalise in at least fp32: half-precision norms of large
        # activations overflow (float64 stays float64).
        logit_scale = self.logit_scale.clamp(max=self.max_logit_scale)
        q_unit = F.normalize(at_least_fp32(q), dim=dim) * logit_scale.exp()
        k_unit = F.normalize(at_least_fp32(k), dim=dim)
        return transform(q_unit.to(q.dtype), k_unit.to(k.dtype), 1.0, dim)

    @property
    def cosine_scale(self) -> Optional[float]:
        """The learnt cosine logit scale in use, the mean over heads where
        each head has its own (None for ``'dot'``)."""
        if self.logit_scale is None:
            return None
        return float(self.logit_scale.detach().clamp(
            max=self.max_logit_scale).exp().mean())

    def extra_repr(self) -> str:
        return f'{self.kind!r}, scale={self.scale:.4g}'


def set_logit_transform(model: nn.Module, how: Optional[str]) -> int:
    """Apply a test-time logit intervention to every :class:`Similarity` in
    ``model``: ``'symmetric'`` ((S + Sᵀ) / 2), ``'transpose'`` (Sᵀ) or None
    (as trained). Returns how many it set; the weights are not touched."""
    check_choice('logit_transform', how, tuple(LOGIT_TRANSFORMS))
    count = 0
    for module in model.modules():
        if isinstance(module, Similarity):
            module.logit_transform = how
            count += 1
    return count
