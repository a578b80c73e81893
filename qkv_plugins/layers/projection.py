"""One module that builds every Q/K/V projection a ``qkv_mode`` asks for."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_conv_layer
from torch import Tensor

from .options import CONSTANT_QUERY_MODES, QKV_MODES, check_choice


class OnesLike(nn.Module):
    """A constant 1 of its input's shape, dtype and device: the query of the
    query-independent modes, so that ``q · k_j = k_j``. No parameters."""

    def forward(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)


class QKVProjection(nn.Module):
    """Makes query, key and value maps from one feature map.

    Projections are 1×1 convolutions named by the roles they serve
    (``query``, ``key``, ``value``, ``query_key``, ``qkv``); a role that has no
    projection in the chosen mode reads the input itself. In the
    :data:`~qkv_plugins.layers.options.CONSTANT_QUERY_MODES`
    (``query_independent``) the key conv has one channel per head and the
    query is ``constant_query(k)``, a 1 of K's shape (None in other modes).

    Args:
        in_channels: Channels of the input.
        qk_channels: Output channels of a projection that makes Q or K
            (``shared`` uses it for V too); a constant-query mode's key has
            ``num_heads`` instead.
        v_channels: Output channels of a value-only projection.
        qkv_mode: One of :data:`~qkv_plugins.layers.options.QKV_MODES`.
        conv_cfg: mmcv conv config for the projections (None: ``nn.Conv2d``).
        num_heads: Heads the layer splits Q/K into (sets the key width of a
            constant-query mode only).
    """

    def __init__(self,
                 in_channels: int,
                 qk_channels: int,
                 v_channels: int,
                 qkv_mode: str,
                 conv_cfg: Optional[dict] = None,
                 num_heads: int = 1) -> None:
        super().__init__()
        self.qkv_mode = check_choice('qkv_mode', qkv_mode, tuple(QKV_MODES))
        self.constant_query = (OnesLike() if qkv_mode in CONSTANT_QUERY_MODES
                               else None)
        if self.constant_query is not None:
            qk_channels = num_heads  # q · k_j = k_j: one logit per head
        self.roles = {}  # role ('q', 'k' or 'v') -> attribute name
        for name, roles in QKV_MODES[qkv_mode]:
            out_channels = v_channels if roles == 'v' else qk_channels
            self.add_module(
                name,
                build_conv_layer(conv_cfg, in_channels, out_channels, 1))
            self.roles.update(dict.fromkeys(roles, name))
        self.qk_channels = self._channels_of('k', in_channels)
        self.v_channels = self._channels_of('v', in_channels)

    def _channels_of(self, role: str, in_channels: int) -> int:
        name = self.roles.get(role)
        return in_channels if name is None else getattr(self,
                                                        name).out_channels

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Return ``(q, k, v)``, each [B, C_role, H, W]; shared roles share
        one tensor."""
        # In the mode table's order: a set's order follows string hashing,
        # which changes from process to process, and with it the order in
        # which autograd sums the projections' input gradients (and so the
        # last bits of every run with two or more projections).
        outputs = {name: getattr(self, name)(x)
                   for name in dict.fromkeys(self.roles.values())}
        q, k, v = (outputs[self.roles[r]] if r in self.roles else x
                   for r in 'qkv')
        if self.constant_query is not None:
            q = self.constant_query(k)
        return q, k, v

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


