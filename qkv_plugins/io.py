"""Output: atomic file writing (a file is either complete or absent, with
the permissions of any other file the user creates), whether the process
that left a file still lives, and table cells."""
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union


def umask_mode(directory: bool = False) -> int:
    """The mode ``open``/``mkdir`` would give a new file (or folder) under
    the current umask; ``mkstemp``/``mkdtemp`` give 0600/0700 instead."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


@contextmanager
def atomic_path(path: Union[str, Path]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only if
    the block finishes without error (the temporary file is removed else)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp',
                               dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: Union[str, Path], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def cell(value, spec: str = '.1f', error: str = '') -> str:
    """``error`` if any, ``-`` for a missing value, else ``value`` formatted."""
    return error or ('-' if value is None else format(value, spec))
