"""The option tables shared by both layers: Q/K/V modes and similarities.

Each ``qkv_mode`` maps to the projections it builds. A projection is named by
the roles it serves (``q``, ``k``, ``v``); a role with no projection reads the
raw input, except the query of a :data:`CONSTANT_QUERY_MODES` mode, a constant
1. Validation lives here so that both layers raise the same errors.
"""
from typing import Dict, Tuple

# mode -> ((attribute name, roles it produces), ...)
QKV_MODES: Dict[str, Tuple[Tuple[str, str], ...]] = {
    'separate': (('query', 'q'), ('key', 'k'), ('value', 'v')),
    'shared_qk': (('query_key', 'qk'), ('value', 'v')),
    'shared': (('qkv', 'qkv'), ),
    'identity_qk': (('value', 'v'), ),
    'identity': (),
    # GCNet's query-independent logits (DNL's unary term alone): a key conv
    # to one channel per head and separate's value; no query (see below).
    'query_independent': (('key', 'k'), ('value', 'v')),
}
# Modes whose query is a constant 1 of K's shape, K having one channel per
# head: the logit of query i for key j is q_i · k_j = k_j, the same map for
# every query (Cao et al., GCNet, https://arxiv.org/abs/1904.11492).
CONSTANT_QUERY_MODES = ('query_independent', )

SIMILARITIES = ('dot', 'cosine')
# (qkv_mode, similarity) -> why that similarity has nothing to act on there
REFUSED_SIMILARITIES: Dict[Tuple[str, str], str] = {
    ('query_independent', 'cosine'):
    'Q is a constant 1 and K has one channel per head, so cos(q, k_j) is '
    'only the sign of k_j; use similarity=\'dot\'',
}


def check_choice(name: str, value: str, allowed) -> str:
    """Return ``value`` if it is one of ``allowed``, else raise ValueError."""
    if value not in allowed:
        raise ValueError(f'{name} must be one of {", ".join(map(repr, allowed))}, '
                         f'but got {value!r}')
    return value


def check_similarity(similarity: str, qkv_mode: str) -> str:
    """Return ``similarity`` if it is known and acts on ``qkv_mode``'s Q and
    K, else raise ValueError."""
    check_choice('similarity', similarity, SIMILARITIES)
    why = REFUSED_SIMILARITIES.get((qkv_mode, similarity))
    if why is not None:
        raise ValueError(f'similarity={similarity!r} has nothing to act on '
                         f'with qkv_mode={qkv_mode!r}: {why}')
    return similarity


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


def check_dropout(name: str, value) -> float:
    """Return ``value`` as a float if it is a probability in [0, 1), else
    raise ValueError (1 would drop everything and divide by 0)."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0 <= value < 1):
        raise ValueError(f'{name} must be a number in [0, 1), but got '
                         f'{value!r}')
    return float(value)


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
