"""The embedded dataset: deterministic, atomic, verified, sensible labels."""
import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from qkv_plugins.data import (TRACKS, DatasetError, make_dataset,
                              object_map, verify_dataset)
from qkv_plugins.data.drawing import PALETTE
from qkv_plugins.data.tracks import IGNORE_INDEX, source_of


def _colour_of(image, mask):
    """Palette index nearest to the mean colour under ``mask``."""
    mean = image[mask].reshape(-1, 3).mean(0)
    return int(np.argmin([np.abs(mean - np.array(p)).sum() for p in PALETTE]))

SMALL = {'train': 3, 'val': 2}


def _quiet(*_):
    pass


def test_same_seed_gives_identical_bytes(tmp_path):
    a = make_dataset(tmp_path / 'a', seed=5, splits=SMALL, log=_quiet)
    b = make_dataset(tmp_path / 'b', seed=5, splits=SMALL, log=_quiet)
    c = make_dataset(tmp_path / 'c', seed=6, splits=SMALL, log=_quiet)
    files = lambda root: json.loads((root / 'manifest.json').read_text())[
        'files']
    assert files(a) == files(b)
    assert files(a) != files(c)
    # cyclic: image, label, objects; grouping: image, label
    assert len(files(a)) == 5 * (3 + 2)


def test_layout_is_mmseg_img_dir_ann_dir(tmp_path):
    root = make_dataset(tmp_path / 'd', splits=SMALL, log=_quiet)
    for track in TRACKS:
        for split, count in SMALL.items():
            images = sorted((root / track / 'img_dir' / split).glob('*.png'))
            labels = sorted((root / track / 'ann_dir' / split).glob('*.png'))
            assert len(images) == len(labels) == count
            image = np.asarray(Image.open(images[0]))
            label = np.asarray(Image.open(labels[0]))
            assert image.shape == (128, 128, 3) and label.shape == (128, 128)
            valid = label[label != IGNORE_INDEX]
            assert valid.size and valid.max() < len(TRACKS[track].classes)


def test_object_map_beside_a_cyclic_image_only(tmp_path):
    root = make_dataset(tmp_path / 'o', splits=SMALL, log=_quiet)
    image = root / 'cyclic' / 'img_dir' / 'val' / '00001.png'
    objects = object_map(image)
    assert np.array_equal(objects, np.asarray(Image.open(
        root / 'cyclic' / 'obj_dir' / 'val' / '00001.png')))
    assert set(np.unique(objects)) <= {0, 1, 2, 3}
    assert object_map(str(image)) is not None  # mmseg's img_path: a str
    # grouping has no object maps; nor has an image outside a tree
    assert object_map(root / 'grouping' / 'img_dir' / 'val' / '00001.png') \
        is None
    assert object_map(tmp_path / 'elsewhere.png') is None


def test_cyclic_labels_follow_the_cycle():
    """Each object is labelled with the colour of its source object."""
    for seed in range(5):
        image, label, objects = TRACKS['cyclic'].sample(
            np.random.default_rng(seed))
        # only the three cycle objects are labelled
        assert np.array_equal(objects > 0, label != IGNORE_INDEX)
        assert (label == IGNORE_INDEX).mean() > 0.8
        for k in (1, 2, 3):
            source = int(source_of(np.array(k)))
            assert set(np.unique(label[objects == k])) == {
                _colour_of(image, objects == source)}


def test_verify_names_the_command_when_data_is_missing(tmp_path):
    with pytest.raises(DatasetError, match='tools/make_dataset.py'):
        verify_dataset(str(tmp_path / 'none'), 'cyclic')


def test_verify_catches_a_changed_file(tmp_path):
    root = make_dataset(tmp_path / 'e', splits=SMALL, log=_quiet)
    verify_dataset(str(root), 'grouping')
    victim = next((root / 'grouping' / 'ann_dir' / 'val').glob('*.png'))
    victim.write_bytes(victim.read_bytes()[:-8])
    with pytest.raises(DatasetError, match='does not match'):
        verify_dataset(str(root), 'grouping')
    with pytest.raises(DatasetError, match="track 'nope' is not in"):
        verify_dataset(str(root), 'nope')


def test_failed_generation_leaves_previous_tree(tmp_path, monkeypatch):
    root = make_dataset(tmp_path / 'f', splits=SMALL, log=_quiet)
    before = (root / 'manifest.json').read_text()

    def broken(rng):
        raise RuntimeError('boom')

    monkeypatch.setitem(TRACKS, 'grouping',
                        dataclasses.replace(TRACKS['grouping'], sample=broken))
    with pytest.raises(Exception):
        make_dataset(root, seed=1, splits=SMALL, log=_quiet)
    assert (root / 'manifest.json').read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ['f']


def test_unknown_track_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown track 'nope'"):
        make_dataset(tmp_path / 'g', tracks=['nope'], log=_quiet)
