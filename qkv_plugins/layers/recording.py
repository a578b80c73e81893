"""Switch layers to their explicit path and collect attention weights.

``forward`` always returns the same tensor; only while a layer is recording
does it take the explicit path and append its weights to a list.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import torch.nn as nn
from torch import Tensor


class RecordsAttention:
    """Mixin for layers whose attention weights can be recorded; gives them
    their ``forward`` from their ``forward_with_weights``."""

    _attention_sink: Optional[List[Tensor]] = None

    @property
    def recording(self) -> bool:
        return self._attention_sink is not None

    def _record(self, weights: Optional[Tensor]) -> None:
        if self._attention_sink is not None and weights is not None:
            self._attention_sink.append(weights.detach())

    def forward(self, x: Tensor) -> Tensor:
        """[B, C, H, W] -> [B, C, H, W]: the fast path, or the explicit path
        while recording (the layer's ``forward_with_weights`` returns its
        output and its weights: one tensor, or a list of hops)."""
        out, weights = self.forward_with_weights(x,
                                                 need_weights=self.recording)
        for hop in weights if isinstance(weights, list) else [weights]:
            self._record(hop)
        return out


def attention_layers(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """(name, layer) of every recording layer inside ``model``."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, RecordsAttention)]


def start_recording(layer: nn.Module) -> List[Tensor]:
    """Switch ``layer`` to its explicit path; return the list its weights
    are appended to (one tensor per call, criss-cross: per hop)."""
    sink: List[Tensor] = []
    layer._attention_sink = sink
    return sink


def stop_recording(layer: nn.Module) -> List[Tensor]:
    """Switch ``layer`` back to its fast path; return what it recorded."""
    sink, layer._attention_sink = layer._attention_sink, None
    return sink or []


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
    layers = attention_layers(model)
    records: Dict[str, List[Tensor]] = {
        name: start_recording(layer) for name, layer in layers}
    try:
        yield records
    finally:
        for _, layer in layers:
            stop_recording(layer)
