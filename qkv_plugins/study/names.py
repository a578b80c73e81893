"""The study's name grammar: what a config stem (and so a run folder) says
about its track, algorithm and variant, and the names the table gives rows.

``{algorithm}-{variant}_{backbone}_{gpus}xb{batch}-..._qkvsyn-{track}-{crop}``
(mmseg's convention); the algorithm is the baseline ``fcn`` or a catalog
name, the variant may hold ``_`` (``shared_qk``) and ends at the backbone
token (``tinyr18s2``). A time-to-solve config carries ``-tts`` in its
schedule token (``1xb8-4500it-tts``).
"""
import re
from typing import Optional, Tuple

from ..layers.catalog import entry_named, names
from ..layers.options import QKV_MODES

_EMBEDDED = re.compile(
    r'^(?P<algo>[a-z]+)(?:-(?P<variant>.+?))?_(?P<backbone>[a-z0-9]+)'
    r'(?:-d\d+)?_\d+xb\d+'
    r'(?P<schedule>.*)_qkvsyn-'
    r'(?P<track>[a-z]+)-\d+x\d+(?:-(?P<iters>\d+)it)?$')
# The study's no-attention head; every other algorithm is a catalog name.
BASELINE = 'fcn'
# row order within a track: the baseline, then the catalog's layers and modes
MODE_ORDER = tuple(QKV_MODES)
TIME_TO_SOLVE_TOKEN = '-tts'


# Any of our config names, mmseg's way: an optional ``qkv-``, the algorithm,
# its variant, then the backbone token (which may hold '-', e.g. mit-b0,
# and be followed by a neck and head, e.g. vit-b16_mln_upernet) before
# ``_<gpus>xb<batch>``.
_ANY = re.compile(r'^(?:qkv-)?(?P<algo>[a-z]+)(?:-(?P<variant>.+?))?_'
                  r'(?P<backbone>[a-z0-9]+(?:-[a-z0-9]+)?)(?:_[a-z]+)*'
                  r'_\d+xb\d+')


def algorithm_and_variant(stem: str) -> Tuple[str, Optional[str]]:
    """(algorithm, variant or None) of any config name of ours
    (``qkv-nonlocal-shared_qk_r50-d8_4xb2-...`` → ('nonlocal',
    'shared_qk')); ValueError for a name outside the grammar."""
    match = _ANY.match(stem)
    if match is None:
        raise ValueError(f'{stem!r} is not <algorithm>-<variant>_<backbone>_'
                         '<gpus>xb<batch>...')
    return match['algo'], match['variant']


def algo_order() -> Tuple[str, ...]:
    return (BASELINE, ) + tuple(names())


def describe_config(stem: str) -> Tuple[str, str, str]:
    """(track, algorithm, variant) from an embedded-study config name (other
    names: the stem as the algorithm). An algorithm that is neither the
    baseline nor a catalog name raises UnknownLayer naming the known ones."""
    match = _EMBEDDED.match(stem)
    if match is None:
        return '-', stem, '-'
    if match['algo'] != BASELINE:
        entry_named(match['algo'])
    variant = match['variant'] or '-'
    if match['iters']:  # a run at another schedule
        variant += f' @{match["iters"]}it'
    return (match['track'], match['algo'], variant)


def backbone_of(stem: str) -> str:
    """The backbone token of an embedded-study name ('' for others)."""
    match = _EMBEDDED.match(stem)
    return match['backbone'] if match else ''


def is_time_to_solve(stem: str) -> bool:
    """Whether a config name is of the time-to-solve schedule."""
    match = _EMBEDDED.match(stem)
    return bool(match) and match['schedule'].endswith(TIME_TO_SOLVE_TOKEN)


def head_name(algo: str, variant: str) -> str:
    """``fcn`` or ``<layer>-<variant>``: how the design names a row."""
    return algo if variant == '-' else f'{algo}-{variant}'


def row_id(track: str, head: str, kind: Optional[str] = None) -> str:
    """The table's id of a row, as the docs cite it
    (``cyclic/nonlocal-shared_qk``, ``cyclic/nonlocal-separate[symmetric]``).
    """
    return f'{track}/{head}' + (f'[{kind}]' if kind else '')
