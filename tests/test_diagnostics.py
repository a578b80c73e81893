"""Each attention statistic on hand-made matrices with known values."""
import math

import pytest
import torch

from qkv_plugins.stats.diagnostics import (asymmetry, mass_on,
                                              normalized_entropy,
                                              query_independence,
                                              scaled_self_affinity,
                                              self_affinity, self_top1,
                                              summarize)

N = 5
OWN = torch.arange(N)
IDENTITY = torch.eye(N)
UNIFORM = torch.full((N, N), 1 / N)
CYCLE = torch.roll(torch.eye(N), 1, dims=1)  # query i -> key i+1
SYMMETRIC = torch.tensor([[0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]])


@pytest.mark.parametrize('weights,expected', [
    (IDENTITY, dict(self_affinity=1, scaled_self_affinity=N, self_top1=1,
                    entropy=0, asymmetry=0, query_independence=1)),
    (UNIFORM, dict(self_affinity=1 / N, scaled_self_affinity=1, entropy=1,
                   asymmetry=0, query_independence=0)),
    (CYCLE, dict(self_affinity=0, scaled_self_affinity=0, self_top1=0,
                 entropy=0, asymmetry=math.sqrt(2), query_independence=1)),
])
def test_known_matrices(weights, expected):
    got = summarize(weights[None], OWN)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


def test_symmetric_matrix_has_zero_asymmetry_and_counts_ties():
    assert float(asymmetry(SYMMETRIC)) == pytest.approx(0)
    # ties go to the first key: row 0 -> key 0 (itself), row 1 -> key 0,
    # row 2 -> key 1
    assert float(self_top1(SYMMETRIC, torch.arange(3))) == pytest.approx(
        1 / 3)
    assert float(self_affinity(SYMMETRIC, torch.arange(3))) == pytest.approx(
        1 / 3)


def test_criss_cross_shaped_maps():
    # 2 queries over 4 keys; own positions at keys 1 and 3
    weights = torch.tensor([[0.1, 0.6, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]])
    own = torch.tensor([1, 3])
    assert float(self_affinity(weights, own)) == pytest.approx(0.425)
    assert float(scaled_self_affinity(weights, own)) == pytest.approx(1.7)
    assert float(self_top1(weights, own)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match='square'):
        asymmetry(weights)
    assert 'asymmetry' not in summarize(weights, own)


def test_mass_on_targets():
    targets = torch.zeros(N, N, dtype=torch.bool)
    targets[:, 2] = True
    targets[4] = False  # query 4 has no target: left out
    assert float(mass_on(UNIFORM, targets)) == pytest.approx(1 / N)
    assert float(mass_on(CYCLE, torch.roll(torch.eye(N, dtype=torch.bool),
                                           1, dims=1))) == pytest.approx(1)


def test_entropy_of_single_key_is_zero():
    assert float(normalized_entropy(torch.ones(3, 1))) == 0
    assert float(query_independence(torch.ones(1, 4) / 4)) == 0


def test_criss_cross_maps_drop_the_structural_zero():
    from qkv_plugins.layers.criss_cross import criss_cross_maps
    from qkv_plugins import QKVCrissCrossAttention
    torch.manual_seed(0)
    layer = QKVCrissCrossAttention(16, qkv_mode='shared', mask_self=False)
    _, hops = layer.forward_with_weights(torch.randn(2, 16, 3, 4))
    maps, own, square = criss_cross_maps(hops[0], max_queries=1024)
    assert maps.shape == (2, 12, 3 + 4 - 1)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 12))
    torch.testing.assert_close(square.sum(-1), torch.ones(2, 12))
    own_weight = maps.gather(-1, own.expand(2, -1)[..., None])[..., 0]
    torch.testing.assert_close(own_weight,
                               square.diagonal(dim1=-2, dim2=-1))
    sampled, own_sampled, none = criss_cross_maps(hops[0], max_queries=5)
    assert sampled.shape[1] == len(own_sampled) <= 5 and none is None


def test_diagnostics_hook_in_a_short_training(tiny_data, tmp_path):
    import json
    from .helpers import run_tool
    from .test_training import CONFIG, tiny_options
    config = tmp_path / 'diag.py'
    config.write_text(
        f"_base_ = ['{CONFIG}']\n"
        "custom_hooks = [dict(type='RunStatsHook'),\n"
        "                dict(type='AttentionDiagnosticsHook')]\n")
    run_tool('tools/train.py', config, '--work-dir', tmp_path / 'w',
             '--cfg-options', *tiny_options(tiny_data, 2),
             env={'OMP_NUM_THREADS': '1'})
    result = json.loads((tmp_path / 'w' / 'attention_diagnostics.json')
                        .read_text())
    stats = result['decode_head.attention']
    assert 0 <= stats['self_affinity'] <= 1
    assert 0 <= stats['entropy'] <= 1 and 'asymmetry' in stats
    assert stats['logit_asymmetry'] > 0  # separate Q and K
    # cyclic track: mass on the source object, from obj_dir
    assert 0 <= stats['source_mass'] <= 1


def test_visualizer_writes_png_of_expected_size(tiny_data, tmp_path):
    from PIL import Image

    from .helpers import REPO, run_tool
    from .test_training import STUDY, tiny_options
    models = []
    for head in ('nonlocal-separate', 'ccnet-shared'):
        config = next(STUDY.glob(f'{head}_*cyclic*.py'))
        work = tmp_path / head
        run_tool('tools/train.py', config, '--work-dir', work,
                 '--cfg-options', *tiny_options(tiny_data, 2),
                 env={'OMP_NUM_THREADS': '1'})
        models.append(f'{config}:{work / "iter_2.pth"}')
    out = tmp_path / 'attention.png'
    run_tool('tools/visualize_attention.py', *models, '--image',
             REPO / 'docs/images/chelsea.png', '--queries', '100,150',
             '200,300', '--out', out)
    # 2 variants x (input + 2 queries) panels of 2.6 in at 100 dpi
    assert Image.open(out).size == (780, 520)


@pytest.mark.parametrize('cyclic,expected', [(True, 1.0), (False, 0.0)])
def test_source_mass_on_a_hand_made_map(cyclic, expected):
    import numpy as np

    from qkv_plugins.data import source_of
    from qkv_plugins.layers import entry_named
    from qkv_plugins.stats.objects import grid_cells, source_mass
    obj = np.zeros((16, 16), np.uint8)  # 4 x 4 cells of 4 px
    for k, cell in ((1, 0), (2, 1), (3, 2)):
        obj[0:4, 4 * cell:4 * cell + 4] = k
    weights = torch.full((1, 1, 16, 16), 1 / 16)
    # circle -> square -> triangle -> circle, or the reverse cycle
    pairs = ((0, 1), (1, 2), (2, 0)) if cyclic else ((0, 2), (1, 0), (2, 1))
    for query, key in pairs:
        weights[0, 0, query] = 0
        weights[0, 0, query, key] = 1
    entry = entry_named('nonlocal')
    height, width = entry.grid(weights, obj.shape)
    cells = grid_cells([obj], height, width)
    source = torch.from_numpy(source_of(cells.numpy()))
    got = source_mass(entry.dense(weights), cells, source)
    assert got['source_mass'] == pytest.approx(expected)
    # uniform attention: one source cell of 16, of the 3 object cells
    assert got['source_mass_chance_image'] == pytest.approx(1 / 16)
    assert got['source_mass_chance_objects'] == pytest.approx(1 / 3)


def test_own_key_statistics_apart_over_objects_and_background():
    import numpy as np

    from qkv_plugins.data import IGNORE_INDEX
    from qkv_plugins.stats.objects import grid_cells, object_stats
    label = np.full((2, 2), IGNORE_INDEX, np.uint8)
    label[0, 0] = 1  # one labelled cell, three background cells
    dense = torch.full((1, 4, 4), 0.1)
    dense[0, 0, 0] = 0.7  # the object cell's own key wins with 0.7
    dense[0, 1, 1] = 0.05  # a background cell gives itself little
    dense[0, 1, 2] = 0.75
    dense[0, 2, 2], dense[0, 3, 3] = 0.7, 0.7
    got = object_stats(dense, grid_cells([label], 2, 2), keys=4,
                       ignore_index=IGNORE_INDEX)
    assert got['self_top1_obj'] == 1.0
    assert got['self_top1_bg'] == pytest.approx(2 / 3)
    assert got['scaled_self_affinity_obj'] == pytest.approx(2.8)
    assert got['scaled_self_affinity_bg'] == pytest.approx(
        4 * (0.05 + 0.7 + 0.7) / 3)


@pytest.mark.parametrize('lift', [False, True])
def test_hook_lifts_the_self_mask_for_its_pass_only(tmp_path, lift):
    import json
    from types import SimpleNamespace

    from qkv_plugins import QKVNonLocal2d
    from qkv_plugins.mmseg.diagnostics_hook import AttentionDiagnosticsHook
    torch.manual_seed(0)
    layer = QKVNonLocal2d(8, qkv_mode='shared_qk', similarity='cosine',
                          mask_self=True)
    model = torch.nn.Sequential(layer)
    runner = SimpleNamespace(model=model, rank=0, work_dir=str(tmp_path))
    hook = AttentionDiagnosticsHook(lift_mask=lift, out_file='d.json')
    hook.before_test_epoch(runner)
    assert layer.mask_self is not lift
    hook.before_test_iter(runner, 0)
    model(torch.randn(2, 8, 4, 4))
    hook.after_test_iter(runner, 0)
    hook.after_test_epoch(runner)
    assert layer.mask_self  # restored
    stats = json.loads((tmp_path / 'd.json').read_text())['0']
    # cosine Q = K: with the mask lifted every position's top key is its own
    assert stats['self_top1'] == (1.0 if lift else 0.0)
    assert stats['self_top1_chance'] == 1 / 16
