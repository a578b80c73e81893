"""Write and verify the embedded dataset (mmseg's img_dir/ann_dir layout).

``tools/make_dataset.py`` is the only writer. It writes a marker file first,
builds the tree in a temporary folder beside the target and renames it into
place, with a manifest of SHA-256 sums that training checks before it starts.
It replaces only a tree that carries its marker: a folder it did not write
is refused, never deleted.
"""
import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Optional, Union

import numpy as np
from PIL import Image

from ..io import pid_alive, umask_mode
from .tracks import IGNORE_INDEX, IMAGE_SIZE, TRACKS

DEFAULT_ROOT = 'data/qkv_synthetic'
MANIFEST = 'manifest.json'
# Written first into every tree the generator makes: only such a tree may
# be replaced.
MARKER = '.qkv_plugins_dataset'
# Bump when a generator changes: older trees then fail verification.
FORMAT_VERSION = 3  # 2: grouping track of disc groups; 3: a test split
# The test split is held out: generated from a stream of its own and never
# used for design choices (the study reports it; val only for curves).
SPLITS = {'train': 600, 'val': 150, 'test': 300}
# Each split's stream key; fixed, so that adding a split changes no other.
SPLIT_STREAMS = {'train': 0, 'val': 1, 'test': 2}
MAKE_COMMAND = 'python tools/make_dataset.py'
SUBDIRS = ('img_dir', 'ann_dir', 'obj_dir')


class DatasetError(RuntimeError):
    """The embedded dataset is missing or does not match its manifest."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _split_seed(seed: int, track: str, split: str) -> np.random.SeedSequence:
    # Independent, reproducible streams per (track, split).
    key = [seed, sorted(TRACKS).index(track), SPLIT_STREAMS[split]]
    return np.random.SeedSequence(key)


def write_track(root: Path, track: str, seed: int,
                splits: Dict[str, int]) -> Dict[str, str]:
    """Write one track under ``root/track``; return {relative path: sha256}."""
    sums = {}
    for split, count in splits.items():
        rng = np.random.default_rng(_split_seed(seed, track, split))
        for i in range(count):
            sample = TRACKS[track].sample(rng)
            # obj_dir: object ids for diagnostics (cyclic track only)
            for sub, array in (('img_dir', sample.image),
                               ('ann_dir', sample.label),
                               ('obj_dir', sample.objects)):
                if array is None:
                    continue
                rel = f'{track}/{sub}/{split}/{i:05d}.png'
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(root / rel, optimize=False)
                sums[rel] = _sha256(root / rel)
    return sums


def object_map(image_path: Union[str, Path]) -> Optional[np.ndarray]:
    """The object-id map ([H, W] uint8, cyclic track) of an image of a
    generated tree (``obj_dir`` beside ``img_dir``), or None where there is
    none."""
    path = Path(str(image_path).replace(f'{os.sep}img_dir{os.sep}',
                                        f'{os.sep}obj_dir{os.sep}'))
    if not path.is_file() or 'obj_dir' not in path.parts:
        return None
    return np.asarray(Image.open(path))


def _temp_prefix(root: Path) -> str:
    """Prefix of the generator's temporary folders beside ``root``."""
    return f'.{root.name}.tmp-'


def clean_stale_temps(root: Path, log=print) -> None:
    """Remove temporary folders of killed generator runs beside ``root``
    (named ``.<root>.tmp-<host>-<pid>-*``; only this host's dead pids)."""
    host = socket.gethostname()
    for tmp in root.parent.glob(_temp_prefix(root) + '*'):
        parts = tmp.name[len(_temp_prefix(root)):].split('-')
        if len(parts) < 3 or not parts[-2].isdigit():
            continue
        owner, pid = '-'.join(parts[:-2]), int(parts[-2])
        if owner == host and not pid_alive(pid) and (tmp / MARKER).exists():
            shutil.rmtree(tmp, ignore_errors=True)
            log(f'[make_dataset] removed {tmp}, left by a killed run')


def check_replaceable(root: Path) -> None:
    """Raise DatasetError unless ``root`` is absent, an empty folder or a
    tree this generator wrote (it holds :data:`MARKER`)."""
    if not root.exists() and not root.is_symlink():
        return
    if root.is_dir() and not root.is_symlink():
        if (root / MARKER).is_file() or not any(root.iterdir()):
            return
    raise DatasetError(
        f'refusing to replace {root}: it was not written by '
        f'{MAKE_COMMAND} (no {MARKER} in it) and may hold your data; '
        'choose another --out, or move it away yourself')


def make_dataset(root: str = DEFAULT_ROOT,
                 seed: int = 0,
                 tracks: Optional[Iterable[str]] = None,
                 splits: Optional[Dict[str, int]] = None,
                 log=print) -> Path:
    """Generate the dataset under ``root`` atomically; same seed → same bytes.

    An existing tree at ``root`` is replaced only if this generator wrote it,
    and only once the new one is complete. Raises DatasetError for any other
    content at ``root``.
    """
    tracks = sorted(TRACKS) if tracks is None else list(tracks)
    for track in tracks:
        if track not in TRACKS:
            raise ValueError(f'unknown track {track!r}; known: '
                             f'{sorted(TRACKS)}')
    splits = dict(SPLITS if splits is None else splits)
    for split, count in splits.items():
        if split not in SPLITS:
            raise ValueError(f'unknown split {split!r}; known: {list(SPLITS)}')
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f'{split} images per track must be a positive '
                             f'int, but got {count!r}')
    root = Path(root)
    check_replaceable(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(root, log)
    tmp = Path(tempfile.mkdtemp(
        prefix=f'{_temp_prefix(root)}{socket.gethostname()}-{os.getpid()}-',
        dir=root.parent))
    try:
        (tmp / MARKER).write_text(json.dumps(
            dict(generator='qkv_plugins.synthetic', format=FORMAT_VERSION)))
        files = {}
        for track in tracks:
            log(f'[make_dataset] {track}: {splits} images of '
                f'{IMAGE_SIZE}x{IMAGE_SIZE}')
            files.update(write_track(tmp, track, seed, splits))
        manifest = dict(format=FORMAT_VERSION, seed=seed, tracks=tracks,
                        splits=splits, image_size=IMAGE_SIZE, files=files)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1,
                                               sort_keys=True))
        os.chmod(tmp, umask_mode(directory=True))
        check_replaceable(root)  # again: something may have appeared since
        old = None
        if root.exists():
            # named as a temporary folder: a kill before the rmtree below
            # leaves it to the next run's clean-up
            old = Path(tempfile.mkdtemp(prefix=f'{_temp_prefix(root)}'
                                        f'{socket.gethostname()}-'
                                        f'{os.getpid()}-old',
                                        dir=root.parent))
            os.rmdir(old)
            root.rename(old)
        tmp.rename(root)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f'[make_dataset] wrote {len(files)} files and {MANIFEST} to {root}')
    return root


def _read_manifest(root_path: Path, fix: str) -> dict:
    """The manifest as a dict; DatasetError naming the file and the fix if
    it is missing, truncated or not a manifest."""
    manifest_path = root_path / MANIFEST
    if not manifest_path.is_file():
        ours = (root_path / MARKER).is_file()
        raise DatasetError(
            f'{"the embedded dataset at" if ours else "no embedded dataset at"}'
            f' {str(root_path)!r} fails its manifest ({MANIFEST} missing): '
            f'{fix}')
    try:
        manifest = json.loads(manifest_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f'{manifest_path} fails its manifest check: not '
                           f'valid JSON ({error}): {fix}') from None
    keys = ('format', 'tracks', 'files')
    if not isinstance(manifest, dict) or any(k not in manifest for k in keys):
        raise DatasetError(f'{manifest_path} fails its manifest check: not a '
                           f'manifest (needs keys {list(keys)}): {fix}')
    return manifest


def _checked_parts(rel: str, manifest_path: Path, fix: str) -> list:
    """``<track>/<subdir>/<split>/<name>.png`` of a manifest entry; a path
    outside that shape (absolute, ``..``, another folder) is refused."""
    parts = rel.split('/')
    if (len(parts) != 4 or parts[0] not in TRACKS or parts[1] not in SUBDIRS
            or parts[2] not in SPLIT_STREAMS or not parts[3].endswith('.png')
            or parts[3] in ('.png', '..png') or '\\' in rel
            or any(p in ('', '.', '..') for p in parts)):
        raise DatasetError(f'{manifest_path} lists {rel!r}, which is not '
                           '<track>/<img_dir|ann_dir|obj_dir>/<split>/'
                           f'<name>.png inside the tree: {fix}')
    return parts


def _check_content(path: Path, subdir: str, classes: int, fix: str) -> None:
    """A file's size and, for labels, its values: what the manifest's sums
    cannot vouch for when the manifest itself was rewritten."""
    with Image.open(path) as image:
        if image.size != (IMAGE_SIZE, IMAGE_SIZE):
            raise DatasetError(
                f'{path} is {image.size[0]}x{image.size[1]}, not '
                f'{IMAGE_SIZE}x{IMAGE_SIZE} like every image of the '
                f'dataset: {fix}')
        if subdir != 'ann_dir':
            return
        values = np.unique(np.asarray(image))
    bad = [int(v) for v in values if v >= classes and v != IGNORE_INDEX]
    if bad:
        raise DatasetError(
            f'{path} holds labels {bad}, outside the track\'s classes '
            f'0..{classes - 1} and the ignore label {IGNORE_INDEX}: {fix}')


def verify_dataset(root: str,
                   track: str,
                   split: Optional[str] = None,
                   full: bool = True) -> dict:
    """Check that ``root`` holds ``track`` as its manifest says.

    Checks that every file of the track (of one ``split``, if given) exists,
    that its folders hold no file the manifest does not list and, with
    ``full``, every SHA-256. Raises DatasetError naming the command that
    makes the data.
    """
    root_path = Path(root)
    fix = (f'run `{MAKE_COMMAND} --out {root}` (or `make data`) to '
           'generate it')
    manifest = _read_manifest(root_path, fix)
    manifest_path = root_path / MANIFEST
    if manifest.get('format') != FORMAT_VERSION:
        raise DatasetError(f'{manifest_path} has format '
                           f'{manifest.get("format")!r}, expected '
                           f'{FORMAT_VERSION}: {fix}')
    if track not in manifest['tracks']:
        raise DatasetError(f'track {track!r} is not in {manifest_path} (it '
                           f'holds {manifest["tracks"]}): {fix}')
    # relative paths: <track>/<img_dir|ann_dir|obj_dir>/<split>/<name>.png
    listed = set()
    classes = len(TRACKS[track].classes)
    for rel, digest in manifest['files'].items():
        parts = _checked_parts(rel, manifest_path, fix)
        if parts[0] != track or (split is not None and parts[2] != split):
            continue
        listed.add(rel)
        path = root_path / rel
        if not path.is_file():
            raise DatasetError(f'{path} is missing: {fix}')
        if full and _sha256(path) != digest:
            raise DatasetError(f'{path} does not match {MANIFEST}: {fix}')
        if full:
            _check_content(path, parts[1], classes, fix)
    splits = [split] if split is not None else list(SPLITS)
    extra = sorted(
        str(path.relative_to(root_path)) for sub in SUBDIRS for s in splits
        for path in (root_path / track / sub / s).glob('*')
        if str(path.relative_to(root_path)) not in listed)
    if extra:
        raise DatasetError(
            f'{len(extra)} file(s) under {root_path / track} are not in '
            f'{manifest_path} and would be read as data, e.g. {extra[:3]}: '
            f'remove them, or {fix}')
    return manifest
