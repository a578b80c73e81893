"""A tiny Cityscapes-shaped tree and a config shrunk to train on it: what
the node check and the tests train stock-inheriting configs with."""
from pathlib import Path
from typing import Tuple

import numpy as np
from PIL import Image


def _image(rng: np.random.Generator, height: int, width: int, path: Path,
           channels: int = 3, high: int = 256) -> None:
    shape = (height, width, channels) if channels else (height, width)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, high, shape, dtype=np.uint8)).save(path)


def make_cityscapes_tree(root: Path, images: int = 2, size=(64, 128),
                         seed: int = 0) -> Path:
    """Random images and train-id labels in Cityscapes' layout
    (``leftImg8bit/<split>/<city>``, ``gtFine/..._labelTrainIds.png``)."""
    rng = np.random.default_rng(seed)
    for split in ('train', 'val'):
        for i in range(images):
            stem = f'town_{i:06d}_000019'
            _image(rng, *size, root / 'leftImg8bit' / split / 'town' /
                   f'{stem}_leftImg8bit.png')
            _image(rng, *size, root / 'gtFine' / split / 'town' /
                   f'{stem}_gtFine_labelTrainIds.png', channels=0, high=19)
    return root


def make_ade20k_tree(root: Path, images: int = 2, size=(96, 96),
                     seed: int = 0) -> Path:
    """Random images and labels in ADE20K's layout (``images/<split>``,
    ``annotations/<split>``)."""
    rng = np.random.default_rng(seed)
    for split in ('training', 'validation'):
        for i in range(images):
            stem = f'ADE_{split[:5]}_{i:08d}'
            _image(rng, *size, root / 'images' / split / f'{stem}.jpg')
            _image(rng, *size, root / 'annotations' / split / f'{stem}.png',
                   channels=0, high=151)
    return root


def shrink_config(cfg, data_root, scale: Tuple[int, int],
                  crop: Tuple[int, int], reduce_zero_label: bool,
                  iters: int = 2) -> None:
    """Same model, small images: ``iters`` iterations on a tiny tree, with
    evaluation and a checkpoint at the end; no pretrained weights."""
    cfg.model.pretrained = None
    if cfg.model.get('backbone', {}).get('init_cfg') is not None:
        cfg.model.backbone.init_cfg = None
    cfg.model.data_preprocessor.size = crop
    train = [dict(type='LoadImageFromFile'),
             dict(type='LoadAnnotations',
                  reduce_zero_label=reduce_zero_label),
             dict(type='Resize', scale=scale, keep_ratio=True),
             dict(type='RandomCrop', crop_size=crop),
             dict(type='RandomFlip', prob=0.5),
             dict(type='PackSegInputs')]
    test = [train[0], dict(type='Resize', scale=scale, keep_ratio=True),
            train[1], dict(type='PackSegInputs')]
    for loader, pipeline in (('train_dataloader', train),
                             ('val_dataloader', test),
                             ('test_dataloader', test)):
        cfg[loader].dataset.data_root = str(data_root)
        cfg[loader].dataset.pipeline = pipeline
        cfg[loader].batch_size = 2 if loader == 'train_dataloader' else 1
        cfg[loader].num_workers = 0
        cfg[loader].persistent_workers = False
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters,
                         val_interval=iters)
    cfg.param_scheduler[0].end = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 1
