"""Seeds pair variants: at one seed, two study variants start from the same
backbone weights and see the same batches (no training)."""
import pytest
import torch

from qkv_plugins.study.sweep import plan

from .helpers import REPO

STUDY = REPO / 'configs' / 'qkv_study'
VARIANTS = ('fcn', 'nonlocal-separate', 'nonlocal-identity-cosine')


def _start(config, seed, data_root, work_dir):
    """(backbone state, first training batch) of a run as the sweep makes
    it."""
    from qkv_plugins.training import build_runner
    [run] = plan([str(config)], [seed], str(work_dir))
    options = [f'{loader}.dataset.data_root={data_root}'
               for loader in ('train_dataloader', 'val_dataloader',
                              'test_dataloader')]
    cfg = run.config_for(options)
    runner = build_runner(cfg)
    runner.model.init_weights()
    backbone = {k: v.clone() for k, v in
                runner.model.backbone.state_dict().items()}
    loader = runner.build_dataloader(cfg.train_dataloader,
                                     seed=runner.seed)
    batch = next(iter(loader))
    return backbone, batch


def _config(head, track='cyclic'):
    [config] = STUDY.glob(f'{head}_tinyr18*_qkvsyn-{track}-*.py')
    return config


@pytest.mark.parametrize('seed', [0, 3])
def test_one_seed_pairs_the_variants(tiny_data, tmp_path, seed):
    (weights_a, batch_a), *others = (
        _start(_config(h), seed, tiny_data, tmp_path / h) for h in VARIANTS)
    for weights_b, batch_b in others:
        assert weights_a.keys() == weights_b.keys()
        for key in weights_a:
            assert torch.equal(weights_a[key], weights_b[key]), key
        for image_a, image_b in zip(batch_a['inputs'], batch_b['inputs']):
            assert torch.equal(image_a, image_b)
        assert ([s.img_path for s in batch_a['data_samples']] ==
                [s.img_path for s in batch_b['data_samples']])


def test_another_seed_changes_the_start(tiny_data, tmp_path):
    config = _config(VARIANTS[0])
    (weights_a, batch_a), (weights_b, batch_b) = (
        _start(config, seed, tiny_data, tmp_path / str(seed))
        for seed in (0, 1))
    assert any(not torch.equal(weights_a[k], weights_b[k])
               for k in weights_a if weights_a[k].is_floating_point())
    assert ([s.img_path for s in batch_a['data_samples']] !=
            [s.img_path for s in batch_b['data_samples']])
