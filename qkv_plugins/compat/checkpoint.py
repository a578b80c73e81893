"""Load mmengine checkpoints with ``torch.load(weights_only=True)``.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; since torch 2.6
that means ``weights_only=True``, which refuses the non-tensor objects that
mmengine writes (its ``HistoryBuffer`` log, numpy arrays and scalars in the
message hub and meta). Rather than switching the safe loader off, we add
exactly those types to torch's allow-list (and, for the ``getattr`` that
pickled functions need, a stand-in that fetches nothing else).
"""
import _codecs
import builtins
import glob
import os
import pickle
import re
import zipfile
from typing import Callable, List, Optional

import numpy as np
import torch

from ..io import atomic_path, refuse_symlink


def _numpy_types() -> List[object]:
    """Types numpy arrays and scalars pickle through."""
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct, scalar
    dtype_classes = [type(np.dtype(t)) for t in np.sctypeDict.values()]
    # _codecs.encode rebuilds the bytes of arrays pickled with protocol 2
    # (string -> bytes, nothing else); torch >= 2.5 allows it by default.
    return [_reconstruct, scalar, np.ndarray, np.dtype, *set(dtype_classes),
            _codecs.encode]


def mmengine_checkpoint_types() -> List[object]:
    """Every non-tensor type an mmengine 0.10 checkpoint holds."""
    from mmengine.config import ConfigDict
    from mmengine.logging import HistoryBuffer
    return [HistoryBuffer, ConfigDict, *_numpy_types()]


# HistoryBuffer registers these on its first instance.
BUILTIN_STATISTICS = frozenset({'min', 'max', 'current', 'mean'})


def history_buffer_method(owner: object, name: str):
    """A ``getattr`` that only fetches HistoryBuffer's statistics methods.

    ``HistoryBuffer`` pickles its ``statistics_methods`` dict of functions,
    which pickle writes as ``builtins.getattr(HistoryBuffer, 'mean')``. The
    real ``getattr`` is a gadget for arbitrary code; this stands in for it
    and refuses everything else.
    """
    from mmengine.logging import HistoryBuffer
    allowed = BUILTIN_STATISTICS | set(HistoryBuffer._statistics_methods)
    if owner is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) in a checkpoint: only '
        f'HistoryBuffer statistics methods {sorted(allowed)} are allowed')


def as_pickled_getattr(fn):
    """``fn`` under the name pickle writes for ``getattr``
    (``builtins.getattr``): the key by which every torch from 2.4 finds an
    allow-listed global (2.4 takes no ``(fn, name)`` pairs)."""

    def getattr_stand_in(owner: object, name: str):
        return fn(owner, name)

    getattr_stand_in.__module__ = 'builtins'
    getattr_stand_in.__name__ = getattr_stand_in.__qualname__ = 'getattr'
    return getattr_stand_in


def allow_mmengine_checkpoints() -> None:
    """Allow-list mmengine's checkpoint types for ``weights_only`` loading
    (torch >= 2.4, which the package requires)."""
    torch.serialization.add_safe_globals(
        [*mmengine_checkpoint_types(),
         as_pickled_getattr(history_buffer_method)])


def atomic_checkpoint_saving() -> None:
    """Make mmengine's Runner write checkpoints atomically.

    A run killed while saving leaves its previous checkpoint complete and no
    partial file under the final name, so ``--resume`` finds a loadable one.
    """
    from mmengine.runner import runner as runner_module
    save = runner_module.save_checkpoint
    if getattr(save, 'is_atomic', False):
        return

    def atomic_save(checkpoint, filename, *args, **kwargs):
        filename = str(filename)
        if '://' in filename:  # remote backends keep their own semantics
            return save(checkpoint, filename, *args, **kwargs)
        with atomic_path(filename) as tmp:
            save(checkpoint, str(tmp), *args, **kwargs)

    atomic_save.is_atomic = True
    runner_module.save_checkpoint = atomic_save


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` cannot be a checkpoint to resume from (empty, truncated,
    not a zip archive or a member failing its CRC), or None if it reads.
    Checks the archive, not its pickle: nothing in it is executed."""
    try:
        if os.path.getsize(path) == 0:
            return 'empty file'
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
        return None if bad is None else f'member {bad} fails its CRC'
    except zipfile.BadZipFile as error:
        return f'not a complete checkpoint archive ({error})'
    except OSError as error:
        return f'unreadable ({error})'


def _candidates(work_dir: str) -> List[str]:
    """``last_checkpoint``'s file, then ``iter_*``/``epoch_*.pth`` newest
    first."""
    found = []
    for path in glob.glob(os.path.join(work_dir, '*.pth')):
        match = re.fullmatch(r'(iter|epoch)_(\d+)\.pth', os.path.basename(path))
        if match:
            found.append((int(match.group(2)), path))
    ordered = [p for _, p in sorted(found, reverse=True)]
    pointer = os.path.join(work_dir, 'last_checkpoint')
    if os.path.isfile(pointer) and not os.path.islink(pointer):
        with open(pointer) as f:
            named = f.read().strip()
        if named and os.path.isfile(named):
            ordered = [named] + [p for p in ordered
                                 if os.path.abspath(p) != os.path.abspath(named)]
    return ordered


def find_resumable_checkpoint(work_dir: str, verify: bool = True,
                              log: Callable[[str], None] = print
                              ) -> Optional[str]:
    """The checkpoint to resume from: ``last_checkpoint`` if it names an
    existing file, else the newest ``iter_*.pth``/``epoch_*.pth``; with
    ``verify``, a damaged one (empty, truncated) is named in a warning and
    the next older readable one taken. None if the work dir holds none."""
    for path in _candidates(work_dir):
        problem = checkpoint_problem(path) if verify else None
        if problem is None:
            return path
        log(f'[checkpoint] WARNING: {path} is damaged ({problem}); trying '
            'an older checkpoint')
    return None


def _no_follow_open(file, mode: str = 'r', *args, **kwargs):
    """``open`` that refuses to write through a symbolic link (for the
    pointer file mmengine writes with the builtin)."""
    if any(c in mode for c in 'wax+'):
        refuse_symlink(file)
        flags = (os.O_WRONLY | os.O_CREAT | getattr(os, 'O_NOFOLLOW', 0)
                 | (os.O_APPEND if 'a' in mode else os.O_TRUNC))
        return os.fdopen(os.open(file, flags, 0o666), mode, *args, **kwargs)
    return builtins.open(file, mode, *args, **kwargs)


def no_follow_pointer() -> None:
    """Make mmengine's CheckpointHook write ``last_checkpoint`` without
    following a symbolic link planted in its place (it opens the file with
    the builtin ``open``)."""
    from mmengine.hooks import checkpoint_hook
    checkpoint_hook.open = _no_follow_open
