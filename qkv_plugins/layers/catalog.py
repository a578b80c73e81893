"""The layer catalog: what the rest of the package needs to know about an
attention layer, stated by the layer's own module.

Each layer module ends with ``register_layer(LayerEntry(...))``; stock twins
(the module a layer reproduces, with its converter) register with
``register_twin``, from the layer's module or, where the twin lives in a
toolkit the layers must not import (mmseg), from that toolkit's glue. The
diagnostics hook, the visualizer, the benchmark, the table, the demo and the
test fixtures ask this catalog; a layer it does not know is an error naming
the known ones, never a fall-through into another layer's branch.
"""
import inspect
from dataclasses import dataclass, field
from typing import (Callable, Dict, List, Mapping, Optional, Sequence, Tuple,
                    Type, Union)

import torch.nn as nn
from torch import Tensor

from .options import QKV_MODES

# (maps [B', Q, K], own key index per query [Q], square [B', Q, Q] or None)
Maps = Tuple[Tensor, Tensor, Optional[Tensor]]


class UnknownLayer(KeyError):
    """An object or name the catalog does not know."""

    def __str__(self) -> str:  # KeyError would print the repr
        return str(self.args[0])


@dataclass(frozen=True)
class LayerEntry:
    """Everything outside a layer's module needs to know about it.

    Attributes:
        name: The one short name: config prefix (``nonlocal-shared_...``),
            table rows, picture labels, benchmark rows.
        cls: The registered layer class.
        maps: ``(weights, max_queries) -> (maps, own, square)``: one
            recorded weight tensor as row-stochastic per-query maps over
            the keys each query sees, the index of the query's own position
            among them, and the square query × query sub-matrix (for
            asymmetry; None where keys are not all positions).
        dense: ``weights -> [B, N, N]``: the weights as a dense matrix over
            all positions (heads averaged, zeros off the keys seen).
        grid: ``(weights, image (h, w)) -> (h, w)``: the feature grid the
            weights live on.
        attention_macs: ``(layer, batch, height, width) -> int``:
            multiply-adds of the attention products in one forward (scores
            and weighted sums; projections excluded).
        hops: ``layer -> int``: weight tensors the layer records per
            forward (criss-cross: its recurrence).
        per_hop: Whether statistics are kept per hop (keys ``name/hop<i>``).
        bench_options: Constructor options the layer benchmark adds.
        deploy_variants: Option sets the deployment grid (ONNX export,
            ``torch.compile``; :mod:`qkv_plugins.bench.deploy`) crosses with
            every mode, similarity and ``mask_self`` the layer accepts.
    """
    name: str
    cls: Type[nn.Module]
    maps: Callable[[Tensor, int], Maps]
    dense: Callable[[Tensor], Tensor]
    grid: Callable[[Tensor, Tuple[int, int]], Tuple[int, int]]
    attention_macs: Callable[[nn.Module, int, int, int], int]
    hops: Callable[[nn.Module], int] = field(default=lambda layer: 1)
    per_hop: bool = False
    bench_options: Mapping[str, object] = field(default_factory=dict)
    deploy_variants: Tuple[Mapping[str, object], ...] = ({}, )

    def options(self) -> Dict[str, object]:
        """Keyword options of the layer and their defaults."""
        params = inspect.signature(self.cls).parameters.values()
        return {p.name: p.default for p in params if p.kind == p.KEYWORD_ONLY}

    def accepts(self, **options) -> bool:
        """Whether the layer can be built with ``options`` (it raises a
        ValueError for a combination it refuses)."""
        try:
            self.cls(16, **options)
        except ValueError:
            return False
        return True

    def modes(self) -> List[str]:
        """The ``qkv_mode`` values the layer accepts (with its defaults)."""
        return [mode for mode in QKV_MODES if self.accepts(qkv_mode=mode)]


KeyMap = Tuple[Tuple[str, str], ...]  # (stock key prefix, our key prefix)


@dataclass(frozen=True)
class StockHead:
    """The stock decode head a twin lives in, and its end-to-end configs.

    Attributes:
        label: How tables name the head (``NLHead``).
        prefix: State-dict prefix of the twin inside a stock model
            (``decode_head.nl_block.``): checkpoint conversion finds the
            head by it.
        config: The stock model config (``mmseg::...``) the end-to-end
            benchmark builds.
        ours: Our AttentionHead config of the same model, relative to the
            repository's ``configs/``.
    """
    label: str
    prefix: str
    config: str
    ours: str


@dataclass(frozen=True)
class StockTwin:
    """A stock module one of our layers reproduces, with everything
    conversion needs.

    Attributes:
        layer: The catalog name of our layer.
        qualname: ``module.Class`` of the stock type (matched by name, so
            that nothing is imported until it is used: mmcv's ops need its
            compiled extension, mmseg is optional).
        label: How tables name it.
        convert: Stock module (with weights) → our layer computing the same.
        build: ``(stock class, channels, our options) -> module or None``:
            the stock module the benchmark times against a case, or None
            where the stock type has no counterpart of those options.
        keys: Stock key prefix → our key prefix, for state dicts.
        head: The stock decode head it lives in (None: none to convert).
        options: ``stock state dict (its own prefix removed) -> our
            options``: what the weights say (reduction, mode, ...); the
            rest are our defaults, which are the stock head's.
    """
    layer: str
    qualname: str
    label: str
    convert: Callable[[nn.Module], nn.Module]
    build: Optional[Callable[[type, int, dict], Optional[nn.Module]]] = None
    keys: KeyMap = ()
    head: Optional[StockHead] = None
    options: Optional[Callable[[Mapping[str, Tensor]], dict]] = None

    def stock_class(self) -> type:
        import importlib
        module, _, name = self.qualname.rpartition('.')
        return getattr(importlib.import_module(module), name)


_ENTRIES: Dict[str, LayerEntry] = {}
_TWINS: Dict[str, StockTwin] = {}  # qualname -> twin


def register_layer(entry: LayerEntry) -> LayerEntry:
    """Add a layer to the catalog (its module does, at import)."""
    for known in _ENTRIES.values():
        if known.name == entry.name and known.cls is not entry.cls:
            raise ValueError(f'catalog name {entry.name!r} is taken by '
                             f'{known.cls.__name__}')
    _ENTRIES[entry.name] = entry
    return entry


def unregister_layer(name: str) -> None:
    """Remove a layer and its twins (tests register toy layers)."""
    _ENTRIES.pop(name, None)
    for qualname in [q for q, t in _TWINS.items() if t.layer == name]:
        del _TWINS[qualname]


def register_twin(twin: StockTwin) -> StockTwin:
    """Add a stock twin of a catalogued layer."""
    entry_named(twin.layer)
    _TWINS[twin.qualname] = twin
    return twin


def entries() -> List[LayerEntry]:
    """Every catalogued layer, in registration order."""
    return list(_ENTRIES.values())


def names() -> List[str]:
    return list(_ENTRIES)


def entry_named(name: str) -> LayerEntry:
    """The entry called ``name``; UnknownLayer naming the known ones."""
    try:
        return _ENTRIES[name]
    except KeyError:
        raise UnknownLayer(f'no attention layer called {name!r} in the '
                           f'catalog; known: {names()}') from None


def entry_for(layer: Union[nn.Module, type]) -> LayerEntry:
    """The entry of a layer (instance or class, subclasses included);
    UnknownLayer naming the known ones."""
    cls = layer if isinstance(layer, type) else type(layer)
    for base in cls.__mro__:
        for entry in _ENTRIES.values():
            if entry.cls is base:
                return entry
    raise UnknownLayer(f'{cls.__name__} is not an attention layer of the '
                       f'catalog; known: {names()} '
                       '(register it with qkv_plugins.layers.register_layer)')


def twins_of(name: str) -> List[StockTwin]:
    return [t for t in _TWINS.values() if t.layer == name]


def twins() -> List[StockTwin]:
    """Every registered stock twin, in registration order."""
    return list(_TWINS.values())


def twin_for(module: nn.Module) -> StockTwin:
    """The twin whose stock type ``module`` is (most derived first);
    TypeError naming the convertible types."""
    for base in type(module).__mro__:
        twin = _TWINS.get(f'{base.__module__}.{base.__qualname__}')
        if twin is not None:
            return twin
    known = sorted(t.qualname for t in _TWINS.values())
    raise TypeError(f'no converter for {type(module).__name__}; convertible '
                    f'stock modules: {known}')


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parameters_per_mode(entry: LayerEntry, in_channels: int,
                        modes: Optional[Sequence[str]] = None
                        ) -> Dict[str, int]:
    """Parameter count of the layer in each mode it accepts."""
    return {
        mode: count_parameters(entry.cls(in_channels, qkv_mode=mode))
        for mode in (entry.modes() if modes is None else modes)
    }


def describe(in_channels: int) -> str:
    """A text listing of every layer, its options and parameter counts."""
    lines = []
    for entry in entries():
        twins = ', '.join(t.label for t in twins_of(entry.name)) or '-'
        lines.append(f'{entry.cls.__name__}  (name {entry.name!r}; '
                     f'registry: mmengine MODELS; stock twin: {twins})')
        for option, default in entry.options().items():
            lines.append(f'  {option} = {default!r}')
        lines.append(f'  parameters at in_channels={in_channels} '
                     '(defaults, dot similarity):')
        for mode, count in parameters_per_mode(entry, in_channels).items():
            lines.append(f'    {mode:<18} {count:>12,}')
    return '\n'.join(lines)
