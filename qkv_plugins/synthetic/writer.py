"""Write and verify the embedded dataset (mmseg's img_dir/ann_dir layout).

``tools/make_dataset.py`` is the only writer. The tree is built in a
temporary folder and renamed into place, with a manifest of SHA-256 sums that
training checks before it starts.
"""
import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Dict, Iterable, Optional

import numpy as np
from PIL import Image

from .tracks import IMAGE_SIZE, TRACKS

DEFAULT_ROOT = 'data/qkv_synthetic'
MANIFEST = 'manifest.json'
# Bump when a generator changes: older trees then fail verification.
FORMAT_VERSION = 2  # 2: grouping track of disc groups
SPLITS = {'train': 600, 'val': 150}
MAKE_COMMAND = 'python tools/make_dataset.py'


class DatasetError(RuntimeError):
    """The embedded dataset is missing or does not match its manifest."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _split_seed(seed: int, track: str, split: str) -> np.random.SeedSequence:
    # Independent, reproducible streams per (track, split).
    key = [seed, sorted(TRACKS).index(track), sorted(SPLITS).index(split)]
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


def make_dataset(root: str = DEFAULT_ROOT,
                 seed: int = 0,
                 tracks: Optional[Iterable[str]] = None,
                 splits: Optional[Dict[str, int]] = None,
                 log=print) -> Path:
    """Generate the dataset under ``root`` atomically; same seed → same bytes.

    An existing tree at ``root`` is replaced only once the new one is
    complete.
    """
    tracks = sorted(TRACKS) if tracks is None else list(tracks)
    for track in tracks:
        if track not in TRACKS:
            raise ValueError(f'unknown track {track!r}; known: '
                             f'{sorted(TRACKS)}')
    splits = dict(SPLITS if splits is None else splits)
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{root.name}.', dir=root.parent))
    try:
        files = {}
        for track in tracks:
            log(f'[make_dataset] {track}: {splits} images of '
                f'{IMAGE_SIZE}x{IMAGE_SIZE}')
            files.update(write_track(tmp, track, seed, splits))
        manifest = dict(format=FORMAT_VERSION, seed=seed, tracks=tracks,
                        splits=splits, image_size=IMAGE_SIZE, files=files)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1,
                                               sort_keys=True))
        old = None
        if root.exists():
            old = root.with_name(f'.{root.name}.old')
            shutil.rmtree(old, ignore_errors=True)
            root.rename(old)
        tmp.rename(root)
        if old is not None:
            shutil.rmtree(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f'[make_dataset] wrote {len(files)} files and {MANIFEST} to {root}')
    return root


def verify_dataset(root: str,
                   track: str,
                   split: Optional[str] = None,
                   full: bool = True) -> dict:
    """Check that ``root`` holds ``track`` as its manifest says.

    Checks that every file of the track (of one ``split``, if given) exists
    and, with ``full``, its SHA-256. Raises DatasetError naming the command that makes the data.
    """
    root_path = Path(root)
    fix = (f'run `{MAKE_COMMAND} --out {root}` (or `make data`) to '
           'generate it')
    manifest_path = root_path / MANIFEST
    if not manifest_path.is_file():
        raise DatasetError(f'no embedded dataset at {root!r} '
                           f'({MANIFEST} missing): {fix}')
    manifest = json.loads(manifest_path.read_text())
    if manifest.get('format') != FORMAT_VERSION:
        raise DatasetError(f'{manifest_path} has format '
                           f'{manifest.get("format")!r}, expected '
                           f'{FORMAT_VERSION}: {fix}')
    if track not in manifest['tracks']:
        raise DatasetError(f'track {track!r} is not in {manifest_path} (it '
                           f'holds {manifest["tracks"]}): {fix}')
    # relative paths: <track>/<img_dir|ann_dir|obj_dir>/<split>/<name>.png
    for rel, digest in manifest['files'].items():
        parts = rel.split('/')
        if parts[0] != track or (split is not None and parts[2] != split):
            continue
        path = root_path / rel
        if not path.is_file():
            raise DatasetError(f'{path} is missing: {fix}')
        if full and _sha256(path) != digest:
            raise DatasetError(f'{path} does not match {MANIFEST}: {fix}')
    return manifest
