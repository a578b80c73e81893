"""Every shipped config loads and builds; stock-dataset configs train."""

import pytest
import torch
from mmengine.config import Config

from qkv_plugins import QKVNonLocal2d
from qkv_plugins.layers import entry_for, entry_named
from qkv_plugins.layers.catalog import names as catalog_names
from qkv_plugins.layers.recording import attention_layers
from qkv_plugins.study.names import (BASELINE, algorithm_and_variant,
                                     describe_config)
from qkv_plugins.check.cityscapes import (make_ade20k_tree,
                                          make_cityscapes_tree, shrink_config)
from qkv_plugins.compat import sync_bn_to_bn

from .helpers import CONFIGS, build_segmentor, run_tool

ALL = sorted(p for p in CONFIGS.rglob('*.py') if '_base_' not in p.parts)
SEG = [p for p in ALL if 'qkv_mmdet' not in p.parts]


def test_config_inventory():
    names = {p.parent.name for p in ALL}
    assert {'qkv_study', 'qkv_cityscapes', 'qkv_ade20k', 'qkv_mmdet',
            'qkv_attention', 'qkv_segformer', 'qkv_vit'} <= names
    # embedded study: each head a catalog layer or the baseline
    # (describe_config raises for an unknown layer); the grouping track
    # holds a subset of the cyclic track's heads
    heads = {}
    for path in (CONFIGS / 'qkv_study').glob('*.py'):
        track, algo, variant = describe_config(path.stem)
        heads.setdefault(track, set()).add((algo, variant))
    assert sorted(heads) == ['cyclic', 'grouping']
    assert heads['grouping'] <= heads['cyclic']
    assert {algo for algo, _ in heads['cyclic']} == {BASELINE,
                                                     *catalog_names()}
    # every row of every scale has its config
    from qkv_plugins.study.demo import SCALES, study_runs
    counts = {scale: len(study_runs(str(CONFIGS / 'qkv_study'), 'x', scale))
              for scale in SCALES}
    assert counts == {'default': 24, 'full': 154, 'extended': 184,
                      'time-to-solve': 48, 'transformers': 21,
                      'transformer-pilot': 2}


def _name_and_mode(stem: str):
    """('nonlocal', 'shared') from 'qkv-nonlocal-shared_r50-d8_...' or
    'nonlocal-shared-cosine_tinyr18s2_...' (suffixes such as -cosine,
    -maskself, -r1 dropped); the mode is None for 'qkv-gcnet_...'."""
    name, variant = algorithm_and_variant(stem)
    return name, (variant or '').split('-')[0] or None


_BACKBONES = ('QKVMixVisionTransformer', 'QKVVisionTransformer')


@pytest.mark.parametrize('path', SEG, ids=lambda p: p.stem)
def test_segmentation_config_builds(path):
    model = build_segmentor(path)
    head = model.decode_head
    if type(model.backbone).__name__ in _BACKBONES:
        _, mode = _name_and_mode(path.stem)
        attentions = [m for m in model.backbone.modules()
                      if type(m).__name__ == 'QKVMultiheadAttention']
        assert attentions and all(a.qkv_mode == mode for a in attentions)
        similarity = 'cosine' if '-cosine' in path.stem else 'dot'
        assert all(a.similarity == similarity for a in attentions)
    elif path.stem.startswith('fcn_'):
        assert type(head).__name__ == 'FCNHead'
    elif path.stem.startswith('fcn-'):  # our layers as backbone plugins
        plugins = attention_layers(model.backbone)
        assert plugins and type(head).__name__ == 'FCNHead'
        for _, plugin in plugins:
            entry_for(plugin)  # a catalog layer
    else:
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


@pytest.mark.parametrize('name,make_tree,scale,reduce_zero_label', [
    ('qkv_cityscapes/qkv-nonlocal-shared_r50-d8_4xb2-40k_cityscapes-512x1024',
     make_cityscapes_tree, (128, 64), False),
    ('qkv_ade20k/qkv-ccnet-shared_qk_r50-d8_4xb4-80k_ade20k-512x512',
     make_ade20k_tree, (96, 96), True),
    ('qkv_cityscapes/qkv-dnl-shared_r50-d8_4xb2-40k_cityscapes-512x1024',
     make_cityscapes_tree, (128, 64), False),
    ('qkv_segformer/qkv-mit-shared_qk_mit-b0_8xb2-160k_ade20k-512x512',
     make_ade20k_tree, (96, 96), True),
    ('qkv_segformer/qkv-mit-identity-cosine_mit-b0_8xb1-160k_cityscapes-'
     '1024x1024', make_cityscapes_tree, (128, 64), False),
    ('qkv_vit/qkv-vit-shared_vit-b16_mln_upernet_8xb2-80k_ade20k-512x512',
     make_ade20k_tree, (64, 64), True),
    ('qkv_ade20k/qkv-gcnet_r50-d8_4xb4-80k_ade20k-512x512', make_ade20k_tree,
     (96, 96), True),
])
def test_stock_dataset_config_trains_two_iterations(name, make_tree, scale,
                                                    reduce_zero_label,
                                                    tmp_path):
    make_tree(tmp_path / 'data')
    cfg = Config.fromfile(CONFIGS / f'{name}.py')
    shrink_config(cfg, tmp_path / 'data', scale, (64, 64), reduce_zero_label)
    config = tmp_path / 'config.py'
    cfg.dump(config)
    result = run_tool('tools/train.py', config, '--work-dir',
                      tmp_path / 'work', env={'OMP_NUM_THREADS': '2'})
    log = result.stdout + result.stderr
    assert 'Iter(train) [2/2]' in log
    assert 'mIoU' in log
    assert (tmp_path / 'work' / 'iter_2.pth').is_file()
