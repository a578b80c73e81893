"""Output: atomic file writing (a file is either complete or absent, with
the permissions of any other file the user creates, and never written
through a symbolic link planted in its place), whether the process that left
a file still lives, and table cells.

Temporaries are created with ``O_EXCL | O_NOFOLLOW`` and name their writer
(host and pid), so that a killed writer's leftovers can be told from a live
one's and removed (:func:`remove_stale_temporaries`); the target is checked
with ``lstat`` before the rename; file and folder are ``fsync``-ed, so that
a renamed file survives a crash of the machine too.
"""
import os
import re
import secrets
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator, List, Union

PathLike = Union[str, Path]


class SymlinkRefused(OSError):
    """A path the project would write is a symbolic link."""


def current_umask() -> int:
    """The process umask, read without changing it (``Umask:`` of
    ``/proc/self/status``; elsewhere the set-and-restore fallback)."""
    try:
        with open('/proc/self/status') as status:
            for line in status:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # not thread-safe; only where /proc has no Umask
    os.umask(mask)
    return mask


def umask_mode(directory: bool = False) -> int:
    """The mode ``open``/``mkdir`` would give a new file (or folder) under
    the current umask; ``mkstemp``/``mkdtemp`` give 0600/0700 instead."""
    return (0o777 if directory else 0o666) & ~current_umask()


def refuse_symlink(path: PathLike) -> None:
    """Raise SymlinkRefused if ``path`` is a symbolic link (``lstat``)."""
    if os.path.islink(path):
        raise SymlinkRefused(
            f'{path} is a symbolic link (to {os.readlink(path)!r}); refusing '
            'to write through it — remove it if it is yours')


def _host_tag() -> str:
    return re.sub(r'[^A-Za-z0-9_-]', '_', socket.gethostname())


# .<name>.<host>-<pid>-<random>.tmp
_TEMPORARY = re.compile(r'^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)-'
                        r'(?P<pid>\d+)-[0-9a-f]+\.tmp$')


def temporary_path(path: PathLike) -> Path:
    """A new, empty temporary beside ``path`` that names its writer,
    created with ``O_EXCL | O_NOFOLLOW`` (mode 0600 until renamed)."""
    path = Path(path)
    while True:
        tmp = path.with_name(f'.{path.name}.{_host_tag()}-{os.getpid()}-'
                             f'{secrets.token_hex(4)}.tmp')
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, 'O_NOFOLLOW', 0), 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def _fsync_path(path: PathLike, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, 'O_DIRECTORY', 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # e.g. folders cannot be opened on some systems
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only
    if the block finishes without error (the temporary is removed else).
    A symbolic link at ``path`` is refused, before and after the block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_symlink(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        refuse_symlink(tmp)  # replaced by a link while the block ran
        _fsync_path(tmp)
        os.chmod(tmp, umask_mode())
        refuse_symlink(path)
        os.replace(tmp, path)
        _fsync_path(path.parent, directory=True)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, 'w') as file:  # the 0600 file made above
            file.write(text)


def open_append(path: PathLike) -> BinaryIO:
    """Open a log for appending (``O_APPEND | O_NOFOLLOW``, created with the
    umask's mode); a symbolic link in its place is refused, naming it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND
                     | getattr(os, 'O_NOFOLLOW', 0), 0o666)
    except OSError as error:
        if os.path.islink(path):
            refuse_symlink(path)
        raise error
    return os.fdopen(fd, 'ab')


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def remove_stale_temporaries(folder: PathLike) -> List[Path]:
    """Remove the temporaries in ``folder`` whose writer (a process on this
    host) is gone; return them. Others' temporaries are left alone."""
    removed = []
    host = _host_tag()
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _TEMPORARY.match(name)
        if (match and match['host'] == host
                and not pid_alive(int(match['pid']))):
            path = Path(folder) / name
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed


def cell(value, spec: str = '.1f', error: str = '') -> str:
    """``error`` if any, ``-`` for a missing value, else ``value`` formatted."""
    return error or ('-' if value is None else format(value, spec))
