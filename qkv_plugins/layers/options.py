"""The option tables shared by both layers: Q/K/V modes and similarities.

Each ``qkv_mode`` maps to the projections it builds. A projection is named by
the roles it serves (``q``, ``k``, ``v``); a role with no projection reads the
raw input. Validation lives here so that both layers raise the same errors.
"""
from typing import Dict, Tuple

# mode -> ((attribute name, roles it produces), ...)
QKV_MODES: Dict[str, Tuple[Tuple[str, str], ...]] = {
    'separate': (('query', 'q'), ('key', 'k'), ('value', 'v')),
    'shared_qk': (('query_key', 'qk'), ('value', 'v')),
    'shared': (('qkv', 'qkv'), ),
    'identity_qk': (('value', 'v'), ),
    'identity': (),
}

SIMILARITIES = ('dot', 'cosine')


def check_choice(name: str, value: str, allowed) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise ValueError."""
    if value not in allowed:
        raise ValueError(f'{name} must be one of {", ".join(map(repr, allowed))}, '
                         f'but got {value!r}')
    return value


def check_positive_int(name: str, value) -> int:
    """Return ``value`` if it is a positive int, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{name} must be a positive int, but got {value!r}')
    return value


def check_bool(name: str, value) -> bool:
    """Return ``value`` if it is a bool, else raise ValueError (a string
    such as ``'False'`` would otherwise count as True)."""
    if not isinstance(value, bool):
        raise ValueError(f'{name} must be True or False, but got {value!r}')
    return value


def reduced_channels(in_channels: int, reduction: int) -> int:
    """``in_channels // reduction``, refusing a reduction that leaves none."""
    check_positive_int('reduction', reduction)
    channels = in_channels // reduction
    if channels < 1:
        raise ValueError(f'reduction={reduction} leaves {in_channels} // '
                         f'{reduction} = 0 projected channels; use a reduction '
                         f'of at most in_channels={in_channels}')
    return channels


def check_input(x, in_channels: int, layer: str) -> None:
    """Raise a ValueError unless ``x`` is [B, in_channels, H, W]."""
    if x.dim() != 4:
        raise ValueError(f'{layer} expects a 4-D input [B, C, H, W], but got '
                         f'a {x.dim()}-D tensor of shape {tuple(x.shape)}')
    if x.shape[1] != in_channels:
        raise ValueError(f'{layer} was built with in_channels={in_channels}, '
                         f'but the input has {x.shape[1]} channels')
