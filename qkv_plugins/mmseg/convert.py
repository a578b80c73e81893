"""Convert NLHead / CCHead / DNLHead / GCHead checkpoints into AttentionHead
ones: :func:`~qkv_plugins.layers.convert.convert_head_state_dict`, over the
catalog's stock twins and heads (this glue module registers the mmseg
twins, e.g. DNLHead's, by importing them)."""
from ..layers.convert import convert_head_state_dict
from . import convert_dnl  # noqa: F401  (registers DNLHead's twin)

__all__ = ['convert_head_state_dict']
