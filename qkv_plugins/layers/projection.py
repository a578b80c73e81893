"""One module that builds every Q/K/V projection a ``qkv_mode`` asks for."""
from typing import Optional, Tuple

import torch.nn as nn
from mmcv.cnn import build_conv_layer
from torch import Tensor

from .options import QKV_MODES, check_choice


class QKVProjection(nn.Module):
    """Makes query, key and value maps from one feature map.

    Projections are 1×1 convolutions named by the roles they serve
    (``query``, ``key``, ``value``, ``query_key``, ``qkv``); a role that has no
    projection in the chosen mode reads the input itself.

    Args:
        in_channels: Channels of the input.
        qk_channels: Output channels of a projection that makes Q or K
            (``shared`` uses it for V too).
        v_channels: Output channels of a value-only projection.
        qkv_mode: One of :data:`~qkv_plugins.layers.options.QKV_MODES`.
        conv_cfg: mmcv conv config for the projections (None: ``nn.Conv2d``).
    """

    def __init__(self,
                 in_channels: int,
                 qk_channels: int,
                 v_channels: int,
                 qkv_mode: str,
                 conv_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.qkv_mode = check_choice('qkv_mode', qkv_mode, tuple(QKV_MODES))
        self.roles = {}  # role ('q', 'k' or 'v') -> attribute name
        for name, roles in QKV_MODES[qkv_mode]:
            out_channels = v_channels if roles == 'v' else qk_channels
            self.add_module(
                name,
                build_conv_layer(conv_cfg, in_channels, out_channels, 1))
            self.roles.update(dict.fromkeys(roles, name))
        self.qk_channels = qk_channels if 'q' in self.roles else in_channels
        self.v_channels = self._channels_of('v', in_channels)

    def _channels_of(self, role: str, in_channels: int) -> int:
        name = self.roles.get(role)
        return in_channels if name is None else getattr(self,
                                                        name).out_channels

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Return ``(q, k, v)``, each [B, C_role, H, W]; shared roles share
        one tensor."""
        outputs = {name: getattr(self, name)(x) for name in set(self.roles.values())}
        q, k, v = (outputs[self.roles[r]] if r in self.roles else x
                   for r in 'qkv')
        return q, k, v

    def extra_repr(self) -> str:
        return f'qkv_mode={self.qkv_mode!r}'


def normal_init_(module: nn.Module, std: float) -> None:
    """Normal(0, std) weights and zero biases for every conv in ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


