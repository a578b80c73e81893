"""Switch layers to their explicit path and collect attention weights.

``forward`` always returns the same tensor; only while a layer is recording
does it take the explicit path and append its weights to a list.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import torch.nn as nn
from torch import Tensor


class RecordsAttention:
    """Mixin for layers whose attention weights can be recorded."""

    _attention_sink: Optional[List[Tensor]] = None

    @property
    def recording(self) -> bool:
        return self._attention_sink is not None

    def _record(self, weights: Optional[Tensor]) -> None:
        if self._attention_sink is not None and weights is not None:
            self._attention_sink.append(weights.detach())


@contextmanager
def record_attention(model: nn.Module) -> Iterator[Dict[str, List[Tensor]]]:
    """Record the attention weights of every QKV layer inside ``model``.

    Yields a dict from module name (``''`` for ``model`` itself) to the list of
    weight tensors the layer produced, one per call (criss-cross: one per
    hop). Layer outputs are unchanged; the explicit path is slower.

    Example:
        >>> with record_attention(model) as maps:
        ...     model(x)
        >>> maps['decode_head.attention'][0].shape
    """
    layers = [(name, m) for name, m in model.named_modules()
              if isinstance(m, RecordsAttention)]
    records: Dict[str, List[Tensor]] = {}
    for name, layer in layers:
        layer._attention_sink = records.setdefault(name, [])
    try:
        yield records
    finally:
        for _, layer in layers:
            layer._attention_sink = None
