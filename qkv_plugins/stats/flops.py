"""FLOP counting that sees the attention (mmengine convention: 1 MAC = 1 FLOP).

mmengine's ``FlopAnalyzer`` has no handler for ``softmax`` or
``scaled_dot_product_attention`` and counts them as zero; we add both.
"""
from math import prod
from typing import Any, List, Tuple

import torch.nn as nn
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from torch import Tensor


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FLOPs of ``scaled_dot_product_attention(q, k, v)``.

    q·kᵀ costs B·N·M·C, the softmax B·N·M (one per logit), and the weighted
    sum B·N·M·Cv, where q is [..., N, C], k [..., M, C] and v [..., M, Cv].
    """
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = prod(q[:-2])
    n, c = q[-2:]
    m, cv = v[-2:]
    return batch * n * m * (c + 1 + cv)


def softmax_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """One FLOP per softmax element."""
    return prod(get_shape(inputs[0]))


EXTRA_FLOP_HANDLES = {
    'aten::scaled_dot_product_attention': sdpa_flop_jit,
    'aten::softmax': softmax_flop_jit,
}


def count_flops(model: nn.Module, inputs: Tuple[Tensor, ...]) -> int:
    """Total FLOPs of ``model(*inputs)``, attention included."""
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(**EXTRA_FLOP_HANDLES)
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return int(analyzer.total())
