"""Every shipped config loads and builds; stock-dataset configs train."""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from qkv_plugins import QKVNonLocal2d
from qkv_plugins.layers import entry_for, entry_named
from qkv_plugins.study.table import BASELINE, describe_config
from qkv_plugins.compat import sync_bn_to_bn

from .helpers import CONFIGS, build_segmentor, run_tool

ALL = sorted(p for p in CONFIGS.rglob('*.py') if '_base_' not in p.parts)
SEG = [p for p in ALL if 'qkv_mmdet' not in p.parts]


def test_config_inventory():
    names = {p.parent.name for p in ALL}
    assert {'qkv_study', 'qkv_cityscapes', 'qkv_ade20k', 'qkv_mmdet',
            'qkv_attention'} <= names
    # embedded study: every head on both tracks, each a catalog layer or
    # the baseline (describe_config raises for an unknown layer)
    heads = {}
    for path in (CONFIGS / 'qkv_study').glob('*.py'):
        track, algo, variant = describe_config(path.stem)
        heads.setdefault(track, set()).add((algo, variant))
    assert sorted(heads) == ['cyclic', 'grouping']
    assert heads['cyclic'] == heads['grouping']
    assert {algo for algo, _ in heads['cyclic']} == {
        BASELINE, 'nonlocal', 'ccnet', 'dnl', 'gcnet'}


def _name_and_mode(stem: str):
    """('nonlocal', 'shared') from 'qkv-nonlocal-shared_r50-d8_...' or
    'nonlocal-shared_tinyr18s2_...'; the mode is None for 'qkv-gcnet_...'."""
    head = stem.split('_r50')[0].split('_tinyr18')[0]
    head = head[len('qkv-'):] if head.startswith('qkv-') else head
    name, _, mode = head.partition('-')
    return name, mode.replace('-r1', '') or None


@pytest.mark.parametrize('path', SEG, ids=lambda p: p.stem)
def test_segmentation_config_builds(path):
    model = build_segmentor(path)
    head = model.decode_head
    if path.stem.startswith('fcn_'):
        assert type(head).__name__ == 'FCNHead'
    elif 'qkvnl' not in path.stem:
        name, mode = _name_and_mode(path.stem)
        assert entry_for(head.attention) is entry_named(name)
        if mode is not None:
            assert head.attention.proj.qkv_mode == mode


def test_mask_rcnn_config_runs_a_forward():
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(CONFIGS / 'qkv_mmdet' /
                          'mask-rcnn_r50-qkvnl-shared-c5_fpn_1x_coco.py')
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmdet')
    model = MODELS.build(sync_bn_to_bn(cfg.model)).eval()
    assert all(isinstance(b.qkv_nonlocal, QKVNonLocal2d)
               for b in model.backbone.layer4)
    shape = (128, 160)
    sample = DetDataSample(metainfo=dict(
        img_shape=shape, ori_shape=shape, pad_shape=shape,
        batch_input_shape=shape, scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        results = model(torch.randn(1, 3, *shape), [sample], mode='predict')
    assert len(results) == 1 and 'masks' in results[0].pred_instances


def _image(rng, h, w, path, channels=3, high=256):
    array = rng.integers(0, high, (h, w, channels) if channels else (h, w),
                         dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _cityscapes_tree(root, rng):
    for split in ('train', 'val'):
        for i in range(2):
            stem = f'town_{i:06d}_000019'
            _image(rng, 64, 128, root / 'leftImg8bit' / split / 'town' /
                   f'{stem}_leftImg8bit.png')
            _image(rng, 64, 128, root / 'gtFine' / split / 'town' /
                   f'{stem}_gtFine_labelTrainIds.png', channels=0, high=19)


def _ade20k_tree(root, rng):
    for split in ('training', 'validation'):
        for i in range(2):
            stem = f'ADE_{split[:5]}_{i:08d}'
            _image(rng, 96, 96, root / 'images' / split / f'{stem}.jpg')
            _image(rng, 96, 96, root / 'annotations' / split / f'{stem}.png',
                   channels=0, high=151)


def _shrink(cfg, data_root, scale, crop, reduce_zero_label):
    """Same config, small images: 2 iterations on a tiny tree."""
    cfg.model.pretrained = None
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
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2,
                         val_interval=2)
    cfg.param_scheduler[0].end = 2
    cfg.default_hooks.checkpoint.interval = 2
    cfg.default_hooks.logger.interval = 1


@pytest.mark.parametrize('name,make_tree,scale,reduce_zero_label', [
    ('qkv_cityscapes/qkv-nonlocal-shared_r50-d8_4xb2-40k_cityscapes-512x1024',
     _cityscapes_tree, (128, 64), False),
    ('qkv_ade20k/qkv-ccnet-shared_qk_r50-d8_4xb4-80k_ade20k-512x512',
     _ade20k_tree, (96, 96), True),
    ('qkv_cityscapes/qkv-dnl-shared_r50-d8_4xb2-40k_cityscapes-512x1024',
     _cityscapes_tree, (128, 64), False),
    ('qkv_ade20k/qkv-gcnet_r50-d8_4xb4-80k_ade20k-512x512', _ade20k_tree,
     (96, 96), True),
])
def test_stock_dataset_config_trains_two_iterations(name, make_tree, scale,
                                                    reduce_zero_label,
                                                    tmp_path):
    rng = np.random.default_rng(0)
    make_tree(tmp_path / 'data', rng)
    cfg = Config.fromfile(CONFIGS / f'{name}.py')
    _shrink(cfg, tmp_path / 'data', scale, (64, 64), reduce_zero_label)
    config = tmp_path / 'config.py'
    cfg.dump(config)
    result = run_tool('tools/train.py', config, '--work-dir',
                      tmp_path / 'work', env={'OMP_NUM_THREADS': '2'})
    log = result.stdout + result.stderr
    assert 'Iter(train) [2/2]' in log
    assert 'mIoU' in log
    assert (tmp_path / 'work' / 'iter_2.pth').is_file()
