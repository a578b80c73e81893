"""Switch layers to their explicit path and collect attention weights.

``forward`` always returns the same tensor; only while a layer is recording
does it take the explicit path and append its weights to a list.
"""
import functools
import inspect
import json
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Tuple

import torch.nn as nn
from torch import Tensor


class RecordsAttention:
    """Mixin for layers whose attention weights can be recorded; gives them
    their ``forward`` from their ``forward_with_weights``, and keeps the
    arguments each was built with (:func:`layer_options`)."""

    _attention_sink: Optional[List[Tensor]] = None
    init_options: Dict[str, object] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if '__init__' in cls.__dict__:
            cls.__init__ = _keeping_options(cls.__init__)

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


def _keeping_options(init):
    """Wrap ``__init__`` so that the instance keeps its bound arguments
    (defaults applied) as ``init_options``; the most derived class's call,
    which returns last, sets them."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        init(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        options = dict(bound.arguments)
        options.pop('self', None)
        for name, param in signature.parameters.items():
            if param.kind == param.VAR_KEYWORD:
                options.update(options.pop(name, {}))
        self.init_options = options

    return wrapper


def layer_options(layer: nn.Module) -> Dict[str, object]:
    """The options a recording layer was built with, as JSON values (what a
    checkpoint records of its variant: ``qkv_mode``, ``similarity``,
    ``mask_self``, ``num_heads``, ...), with its type."""
    options = dict(getattr(layer, 'init_options', {}))
    return dict(type=type(layer).__name__,
                **json.loads(json.dumps(options, default=repr)))


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
