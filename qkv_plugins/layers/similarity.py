"""How a query scores a key: scaled dot product or cosine with a learnt scale."""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .kernels import at_least_fp32
from .options import SIMILARITIES, check_bool, check_choice

# Cosine logits are s * cos(q, k) with s = exp(logit_scale), as in CLIP and
# Swin V2: initialised at 10, never above 100 (or above a larger initial
# scale a layer asks for: the clamp never pulls the start down).
COSINE_INIT_SCALE = 10.0
COSINE_MAX_SCALE = 100.0


class Similarity(nn.Module):
    """Prepares Q and K so that ``scale * (q · k)`` is the attention logit.

    Args:
        similarity: ``'dot'`` or ``'cosine'``.
        use_scale: With ``'dot'``, scale logits by 1/√(channels per head).
        channels_per_head: Q/K channels that one head's dot product sums.
        init_scale: With ``'cosine'``, the learnt scale's initial value
            (None: :data:`COSINE_INIT_SCALE`). The scale is clamped at
            ``max(COSINE_MAX_SCALE, init_scale)``.
    """

    def __init__(self, similarity: str, use_scale: bool,
                 channels_per_head: int,
                 init_scale: Optional[float] = None) -> None:
        super().__init__()
        self.kind = check_choice('similarity', similarity, SIMILARITIES)
        check_bool('use_scale', use_scale)
        if init_scale is None:
            init_scale = COSINE_INIT_SCALE
        elif (isinstance(init_scale, bool)
              or not isinstance(init_scale, (int, float))
              or not 0 < init_scale < math.inf):
            raise ValueError('init_scale must be a positive finite number, '
                             f'but got {init_scale!r}')
        self.max_logit_scale = math.log(max(COSINE_MAX_SCALE, init_scale))
        if similarity == 'cosine':
            self.logit_scale = nn.Parameter(
                torch.tensor(math.log(init_scale)))
            self.scale = 1.0
        else:
            self.logit_scale = None
            self.scale = channels_per_head**-0.5 if use_scale else 1.0

    def forward(self, q: Tensor, k: Tensor,
                dim: int) -> Tuple[Tensor, Tensor, float]:
        """Return ``(q, k, scale)``; channels run along ``dim``."""
        if self.logit_scale is None:
            return q, k, self.scale
        # Normalise in at least fp32: half-precision norms of large
        # activations overflow (float64 stays float64).
        logit_scale = self.logit_scale.clamp(max=self.max_logit_scale)
        q_unit = F.normalize(at_least_fp32(q), dim=dim) * logit_scale.exp()
        k_unit = F.normalize(at_least_fp32(k), dim=dim)
        return q_unit.to(q.dtype), k_unit.to(k.dtype), 1.0

    def extra_repr(self) -> str:
        return f'{self.kind!r}, scale={self.scale:.4g}'
