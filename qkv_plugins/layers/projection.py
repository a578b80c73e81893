"""One module that builds every Q/K/V projection a ``qkv_mode`` asks for.

The mode table (:data:`~qkv_plugins.layers.options.QKV_MODES`) says which
projections a mode has and which roles each serves; a *layout* says how they
are stored and run:

- ``'conv'``: one 1×1 convolution per projection over a map [B, C, H, W],
  named as the table names it (the convolutional blocks);
- ``'linear'``: linear weights over tokens [B, N, C] named as
  ``nn.MultiheadAttention`` names them, so that stock state dicts load:
  projections of one role each are packed into ``in_proj_weight`` /
  ``in_proj_bias`` (row blocks in q, k, v order, as stock); a projection
  serving several roles, or a mode's only one-role projection, is
  ``<roles>_proj_weight`` / ``_bias`` (``qk_proj``, ``qkv_proj``, ``v_proj``).

Both layouts run through the same ``forward``: queries may read one tensor and
keys/values another (SegFormer's reduced keys), and a projection runs once per
distinct input, so that shared roles stay one tensor.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_conv_layer
from torch import Tensor

from .options import CONSTANT_QUERY_MODES, QKV_MODES, check_choice

# (attribute name, roles, output channels per role) of one table entry
_Entry = Tuple[str, str, int]
# nn.MultiheadAttention's name of the packed one-role projections
PACKED_NAME = 'in_proj'


class OnesLike(nn.Module):
    """A constant 1 of its input's shape, dtype and device: the query of the
    query-independent modes, so that ``q · k_j = k_j``. No parameters."""

    def forward(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)


def _run_conv(owner: nn.Module, name: str, x: Tensor,
              rows: Optional[slice]) -> Tensor:
    """[B, C, H, W] -> [B, C_out, H, W] through the conv ``owner.<name>``."""
    return getattr(owner, name)(x)


def _run_linear(owner: nn.Module, name: str, x: Tensor,
                rows: Optional[slice]) -> Tensor:
    """[B, N, C] -> [B, N, C_out] through ``owner.<name>_weight`` / ``_bias``
    (only their ``rows`` if given: one input's share of a packed one)."""
    weight = getattr(owner, f'{name}_weight')
    bias = getattr(owner, f'{name}_bias')
    if rows is not None:
        weight = weight[rows]
        bias = None if bias is None else bias[rows]
    return F.linear(x, weight, bias)


@dataclass(frozen=True)
class Projection:
    """One projection of a mode, as plain data (deep copies and pickles
    refer to module-level functions, never to the module that owns it).

    Attributes:
        name: Attribute of the owner (conv: a module; linear: the prefix of
            ``<name>_weight`` / ``<name>_bias``).
        roles: The roles it makes, in q, k, v order.
        widths: Output channels of each role's row block where the roles
            are packed (each role its own rows); empty where one output
            serves every role.
        run: ``(owner, name, x, rows) -> output``.
    """
    name: str
    roles: str
    widths: Tuple[int, ...]
    run: Callable[[nn.Module, str, Tensor, Optional[slice]], Tensor]

    def make(self, owner: nn.Module,
             inputs: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """{role: output} from ``inputs`` ({role: tensor it reads}): one run
        per distinct input tensor; a packed projection runs the rows of the
        roles reading that input and splits them per role."""
        groups: Dict[int, Tuple[Tensor, List[str]]] = {}  # by input
        for role in self.roles:
            x = inputs[role]
            groups.setdefault(id(x), (x, []))[1].append(role)
        made: Dict[str, Tensor] = {}
        for x, roles in groups.values():
            if not self.widths:  # one output serves every role
                out = self.run(owner, self.name, x, None)
                made.update(dict.fromkeys(roles, out))
                continue
            # roles reading one input are consecutive rows (q | k, v)
            first, last = (self.roles.index(roles[0]),
                           self.roles.index(roles[-1]))
            start, stop = sum(self.widths[:first]), sum(self.widths[:last + 1])
            rows = None if len(roles) == len(self.roles) else slice(start,
                                                                    stop)
            out = self.run(owner, self.name, x, rows)
            # [..., sum of widths] -> one [..., width] view per role
            made.update(zip(roles, out.split(
                list(self.widths[first:last + 1]), dim=-1)))
        return made


def _conv_projections(owner: nn.Module, entries: List[_Entry],
                      in_channels: int, conv_cfg: Optional[dict],
                      bias: bool) -> List[Projection]:
    """One 1×1 conv per table entry, named as the table names it."""
    projections = []
    for name, roles, width in entries:
        owner.add_module(
            name, build_conv_layer(conv_cfg, in_channels, width, 1,
                                   bias=bias))
        projections.append(Projection(name, roles, (), _run_conv))
    return projections


def _linear_projections(owner: nn.Module, entries: List[_Entry],
                        in_channels: int, conv_cfg: Optional[dict],
                        bias: bool) -> List[Projection]:
    """``nn.MultiheadAttention``'s names and init: one-role projections
    packed into ``in_proj`` where there are several, Xavier-uniform weights,
    zero biases."""
    if conv_cfg is not None:
        raise ValueError('conv_cfg applies to the \'conv\' layout only, but '
                         f'got conv_cfg={conv_cfg!r} with layout=\'linear\'')
    singles = [entry for entry in entries if len(entry[1]) == 1]
    pack = len(singles) > 1
    projections = []
    for entry in entries:
        name, roles, _ = entry
        if pack and len(roles) == 1:
            if entry is singles[0]:  # the pack stands where its first is
                projections.append(Projection(
                    PACKED_NAME, ''.join(r for _, r, _ in singles),
                    tuple(w for _, _, w in singles), _run_linear))
        else:
            projections.append(Projection(f'{roles}_proj', roles, (),
                                          _run_linear))
    widths = {roles: width for _, roles, width in entries}
    for p in projections:
        rows = sum(p.widths) if p.widths else widths[p.roles]
        owner.register_parameter(f'{p.name}_weight',
                                 nn.Parameter(torch.empty(rows, in_channels)))
        owner.register_parameter(
            f'{p.name}_bias', nn.Parameter(torch.zeros(rows)) if bias else None)
    for p in projections:  # after all exist: stock's order of random draws
        nn.init.xavier_uniform_(getattr(owner, f'{p.name}_weight'))
    return projections


# layout -> builder of the mode's projections on the owner
LAYOUTS: Dict[str, Callable[..., List[Projection]]] = {
    'conv': _conv_projections,
    'linear': _linear_projections,
}


class QKVProjection(nn.Module):
    """Makes query, key and value from one input (or queries from one and
    keys/values from another).

    Projections are named by the roles they serve (see the module docstring
    for the two layouts); a role that has no projection in the chosen mode
    reads its input itself. In the
    :data:`~qkv_plugins.layers.options.CONSTANT_QUERY_MODES`
    (``query_independent``) the key projection has one channel per head and
    the query is ``constant_query(k)``, a 1 of K's shape (None in other
    modes).

    Args:
        in_channels: Channels of the input.
        qk_channels: Output channels of a projection that makes Q or K
            (``shared`` uses it for V too); a constant-query mode's key has
            ``num_heads`` instead.
        v_channels: Output channels of a value-only projection.
        qkv_mode: One of :data:`~qkv_plugins.layers.options.QKV_MODES`.
        conv_cfg: mmcv conv config for the projections (None: ``nn.Conv2d``;
            ``'conv'`` layout only).
        num_heads: Heads the layer splits Q/K into (sets the key width of a
            constant-query mode only).
        layout: ``'conv'`` (maps, 1×1 convs) or ``'linear'`` (tokens,
            ``nn.MultiheadAttention``'s names).
        bias: Whether the projections have biases.
    """

    def __init__(self,
                 in_channels: int,
                 qk_channels: int,
                 v_channels: int,
                 qkv_mode: str,
                 conv_cfg: Optional[dict] = None,
                 num_heads: int = 1,
                 *,
                 layout: str = 'conv',
                 bias: bool = True) -> None:
        super().__init__()
        self.qkv_mode = check_choice('qkv_mode', qkv_mode, tuple(QKV_MODES))
        self.layout = check_choice('layout', layout, tuple(LAYOUTS))
        self.constant_query = (OnesLike() if qkv_mode in CONSTANT_QUERY_MODES
                               else None)
        if self.constant_query is not None:
            qk_channels = num_heads  # q · k_j = k_j: one logit per head
        entries = [(name, roles, v_channels if roles == 'v' else qk_channels)
                   for name, roles in QKV_MODES[qkv_mode]]
        self.projections = LAYOUTS[layout](self, entries, in_channels,
                                           conv_cfg, bias)
        self.roles = {role: p.name for p in self.projections
                      for role in p.roles}  # role ('q', 'k', 'v') -> name
        width = {roles: w for _, roles, w in entries}
        made = {role: width[roles] for _, roles, _ in entries
                for role in roles}
        self.qk_channels = made.get('k', in_channels)
        self.v_channels = made.get('v', in_channels)

    def forward(self, x: Tensor,
                x_kv: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
        """Return ``(q, k, v)`` of the queries' input ``x`` and the keys'
        and values' input ``x_kv`` (None: ``x``); shared roles share one
        tensor where they read one input."""
        source = x if x_kv is None else x_kv
        inputs = {'q': x, 'k': source, 'v': source}
        # In the mode table's order: a set's order follows string hashing,
        # which changes from process to process, and with it the order in
        # which autograd sums the projections' input gradients (and so the
        # last bits of every run with two or more projections).
        outputs: Dict[str, Tensor] = {}
        for projection in self.projections:
            outputs.update(projection.make(self, inputs))
        q, k, v = (outputs.get(role, inputs[role]) for role in 'qkv')
        if self.constant_query is not None:
            q = self.constant_query(k)
        return q, k, v

    def load_packed_(self, state_dict: dict, prefix: str) -> None:
        """Replace a stock packed projection (``nn.MultiheadAttention``'s
        ``in_proj_weight`` / ``in_proj_bias``: Q, K, V row blocks of equal
        height) in ``state_dict`` by this mode's parameters: each takes the
        rows of the roles it makes (one serving several roles: its first
        role's, Q's for Q = K and Q = K = V). Nothing changes where the
        packed projection is this mode's own."""
        if self.layout != 'linear':
            raise ValueError('load_packed_ maps nn.MultiheadAttention\'s '
                             'packed projection onto the \'linear\' layout, '
                             f'but this projection has layout={self.layout!r}')
        if any(p.name == PACKED_NAME and p.roles == 'qkv'
               for p in self.projections):
            return
        weight = state_dict.pop(prefix + f'{PACKED_NAME}_weight')
        bias = state_dict.pop(prefix + f'{PACKED_NAME}_bias', None)
        height = weight.shape[0] // 3

        def block(t: Tensor, role: str) -> Tensor:  # [3C, ...] -> [C, ...]
            start = 'qkv'.index(role) * height
            return t[start:start + height]

        for p in self.projections:
            roles = p.roles if p.widths else p.roles[0]
            state_dict[prefix + f'{p.name}_weight'] = torch.cat(
                [block(weight, r) for r in roles])
            if bias is not None:
                state_dict[prefix + f'{p.name}_bias'] = torch.cat(
                    [block(bias, r) for r in roles])

    def extra_repr(self) -> str:
        return f'qkv_mode={self.qkv_mode!r}'


def zero_init_(module: nn.Module) -> None:
    """Zero weight and bias: the one zero factor that makes a residual block
    start as the identity (of a ConvModule: its norm if it has one)."""
    target = getattr(module, 'norm', None) if getattr(
        module, 'with_norm', False) else getattr(module, 'conv', module)
    nn.init.zeros_(target.weight)
    if target.bias is not None:
        nn.init.zeros_(target.bias)


def normal_init_(module: nn.Module, std: float) -> None:
    """Normal(0, std) weights and zero biases for every conv in ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


