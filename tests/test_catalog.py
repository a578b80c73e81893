"""One catalog: a toy attention layer defined here reaches every consumer
(diagnostics hook, visualizer, benchmark case builder, table) with no other
edit; an object the catalog does not know is an error naming the known
ones, in each consumer."""
import json
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.registry import MODELS

from qkv_plugins.layers import (LayerEntry, UnknownLayer, entry_for,
                                entry_named, from_mmcv, register_layer)
from qkv_plugins.layers.catalog import (StockHead, StockTwin, names,
                                        register_twin, unregister_layer)
from qkv_plugins.layers.recording import RecordsAttention

STUDY_NAME = 'toy-{mode}_tinyr18s2_1xb8-1500it_qkvsyn-cyclic-128x128'


class ToyRowAttention(RecordsAttention, nn.Module):
    """Each position attends over its own row (keys: the W positions of
    row h); records [B, H, W, W]. Not like any catalogued layer."""

    def __init__(self, in_channels: int, *, qkv_mode: str = 'identity',
                 similarity: str = 'dot', mask_self: bool = False) -> None:
        super().__init__()
        if qkv_mode != 'identity' or similarity != 'dot' or mask_self:
            raise ValueError('ToyRowAttention: identity/dot/no mask only')
        self.in_channels = in_channels
        self.gamma = nn.Parameter(torch.tensor(0.5))

    def forward_with_weights(self, x, need_weights=True):
        # [B, C, H, W] -> [B, H, W, W] scores within each row
        weights = torch.einsum('bchw,bchv->bhwv', x, x).softmax(-1)
        out = torch.einsum('bhwv,bchv->bchw', weights, x)
        return x + self.gamma * out, (weights if need_weights else None)

    def forward(self, x):
        out, weights = self.forward_with_weights(x, self.recording)
        self._record(weights)
        return out


def _row_maps(weights, max_queries):
    b, h, w, _ = weights.shape
    maps = weights.reshape(b, h * w, w)
    own = torch.arange(w).repeat(h)  # own key: column index
    return maps[:, :max_queries], own[:max_queries], None


def _row_dense(weights):
    b, h, w, _ = weights.shape
    dense = weights.new_zeros(b, h, w, h, w)
    rows = torch.arange(h)
    dense[:, rows, :, rows, :] = weights.float().transpose(0, 1)
    return dense.reshape(b, h * w, h * w)


TOY = LayerEntry(
    name='toy', cls=ToyRowAttention, maps=_row_maps, dense=_row_dense,
    grid=lambda weights, image: tuple(weights.shape[1:3]),
    attention_macs=lambda layer, b, h, w: b * h * w * w * 2 *
    layer.in_channels)


class ToyStock(nn.Module):
    """The toy layer's "stock twin", as a stock module in another library
    would be: other parameter names, its own class."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.scale = nn.Parameter(torch.tensor(0.25))

    def forward(self, x):
        weights = torch.einsum('bchw,bchv->bhwv', x, x).softmax(-1)
        return x + self.scale * torch.einsum('bhwv,bchv->bchw', weights, x)


TOY_KEYS = (('scale', 'gamma'), )


def _toy_from_stock(module):
    from qkv_plugins.layers.convert import load_converted
    return load_converted(ToyRowAttention(module.in_channels), module,
                          TOY_KEYS)


TOY_TWIN = StockTwin(
    layer='toy', qualname=f'{ToyStock.__module__}.{ToyStock.__qualname__}',
    label='toy stock', convert=_toy_from_stock, keys=TOY_KEYS,
    head=StockHead(label='ToyHead', prefix='decode_head.toy_block.',
                   config='mmseg::fcn/toy.py', ours='toy/qkv-toy.py'),
    options=lambda state: dict(qkv_mode='identity'))


@pytest.fixture
def toy():
    MODELS.register_module(module=ToyRowAttention, force=True)
    register_layer(TOY)
    register_twin(TOY_TWIN)
    yield TOY
    unregister_layer('toy')
    MODELS.module_dict.pop('ToyRowAttention', None)


class Unknown(RecordsAttention, nn.Module):
    """A recording layer nobody registered."""

    def forward(self, x):
        self._record(torch.ones(x.shape[0], 1, 4, 4) / 4)
        return x


def _runner(model, work_dir):
    return SimpleNamespace(model=model, work_dir=str(work_dir), rank=0)


def _hook_run(model, work_dir):
    from qkv_plugins.mmseg.diagnostics_hook import AttentionDiagnosticsHook
    hook = AttentionDiagnosticsHook()
    runner = _runner(model, work_dir)
    hook.before_val_epoch(runner)
    hook.before_val_iter(runner, 0)
    model(torch.randn(2, 4, 3, 5))
    hook.after_val_iter(runner, 0)
    hook.after_val_epoch(runner)
    return json.loads((work_dir / 'attention_diagnostics.json').read_text())


def test_toy_layer_reaches_every_consumer(toy, tmp_path):
    # registry and catalog
    layer = MODELS.build(dict(type='ToyRowAttention', in_channels=4))
    assert entry_for(layer) is toy and 'toy' in names()
    # diagnostics hook
    stats = _hook_run(nn.Sequential(layer), tmp_path)
    assert set(stats) == {'0'}
    assert 0 <= stats['0']['entropy'] <= 1 and 'asymmetry' not in stats['0']
    # visualizer
    from qkv_plugins.stats.pictures import draw, query_field
    x = torch.randn(1, 4, 3, 5)
    _, weights = layer.forward_with_weights(x)
    field = query_field([weights], toy, (1, 2), (3, 5))
    assert field.shape == (3, 5) and abs(field[1].sum() - 1) < 1e-5
    assert field[0].sum() == 0 and field[2].sum() == 0  # only its row
    draw(torch.rand(30, 50, 3).numpy(), [(15, 25)],
         {'toy': (toy, [weights], (3, 5))}, str(tmp_path / 'toy.png'))
    assert (tmp_path / 'toy.png').stat().st_size > 0
    # benchmark case builder
    from qkv_plugins.bench.layers import (Case, attention_flops, build_ours,
                                          build_reference, run_cases)
    from qkv_plugins.bench.report import default_cases
    case = Case('toy', 'identity', 'dot', False, 3, 5, 4, 1)
    assert isinstance(build_ours(case), ToyRowAttention)
    assert build_reference(case)[0] == 'ours explicit'
    assert attention_flops(case) == 2 * 3 * (1 * 3 * 5 * 5 * 2 * 4)
    assert [c.layer for c in default_cases(['toy'], False, True)] == ['toy']
    results = run_cases([case], torch.device('cpu'), torch.float32, warmup=0,
                        repeats=1, log=lambda _: None)
    assert all(r.time_ms > 0 for r in results)
    # table
    from qkv_plugins.study.collect import collect
    from qkv_plugins.study.compare import analyse
    from qkv_plugins.study.render import main_rows
    run = tmp_path / 'study' / STUDY_NAME.format(mode='identity') / 'seed0'
    run.mkdir(parents=True)
    (run / 'run_stats.json').write_text(json.dumps(
        dict(complete=True, iter=1, max_iters=1, metrics={'mIoU': 40.0})))
    (run / 'test_metrics.json').write_text(json.dumps(
        dict(metrics={'mIoU': 42.0})))
    variants, problems = collect(str(tmp_path / 'study'))
    assert problems == [] and main_rows(variants, analyse(variants))[0][
        :5] == ['cyclic', 'toy', 'identity', '1/1', '42.00 ± 0.00']


def test_toy_twin_converts_a_module_and_a_checkpoint_through_the_catalog(
        toy):
    from qkv_plugins.bench.end_to_end import catalog_heads
    from qkv_plugins.layers.convert import convert_head_state_dict
    stock = ToyStock(4)
    x = torch.randn(2, 4, 3, 5)
    ours = from_mmcv(stock)
    assert isinstance(ours, ToyRowAttention)
    torch.testing.assert_close(ours(x), stock(x))
    model_state = {'backbone.conv.weight': torch.ones(1),
                   'decode_head.toy_block.scale': torch.tensor(0.5),
                   'decode_head.conv_seg.bias': torch.zeros(2)}
    state, attention = convert_head_state_dict(model_state)
    assert attention == dict(type='ToyRowAttention', qkv_mode='identity')
    assert sorted(state) == ['backbone.conv.weight', 'decode_head.attention.'
                             'gamma', 'decode_head.conv_seg.bias']
    # the end-to-end benchmark asks the catalog for its heads
    assert ('ToyHead (mmseg)', 'mmseg::fcn/toy.py') in catalog_heads()
    assert ('AttentionHead ToyRowAttention separate', 'toy/qkv-toy.py') in \
        catalog_heads()


def test_checkpoint_of_no_known_head_names_the_known_ones():
    from qkv_plugins.layers.convert import convert_head_state_dict
    with pytest.raises(ValueError, match=r'one of NLHead \(decode_head\.'
                       r'nl_block\.\*\), CCHead'):
        convert_head_state_dict({'decode_head.conv_seg.bias': torch.zeros(1)})


def test_every_consumer_refuses_an_unknown_layer(tmp_path):
    known = str(names())
    with pytest.raises(UnknownLayer, match=f"Unknown is not an attention "
                       f"layer of the catalog; known: {known}".replace(
                           '[', r'\[').replace(']', r'\]')):
        _hook_run(nn.Sequential(Unknown()), tmp_path)
    # the visualizer asks the catalog for the layer it draws
    with pytest.raises(UnknownLayer, match='known'):
        entry_for(Unknown())
    from qkv_plugins.bench.layers import Case, build_ours
    with pytest.raises(UnknownLayer, match="no attention layer called 'nope'"):
        build_ours(Case('nope', 'separate', 'dot', False, 3, 5, 4, 1))
    from qkv_plugins.study.collect import collect
    run = tmp_path / 'study' / STUDY_NAME.replace('toy', 'nope').format(
        mode='separate') / 'seed0'
    run.mkdir(parents=True)
    (run / 'run_stats.json').write_text('{}')
    variants, problems = collect(str(tmp_path / 'study'))
    assert variants == [] and "no attention layer called 'nope'" in \
        problems[0]
    with pytest.raises(TypeError, match='no converter for Linear'):
        from_mmcv(nn.Linear(2, 2))


def test_every_catalogued_layer_has_a_unique_name_and_accepts_a_mode():
    assert len(set(names())) == len(names())
    for name in names():
        entry = entry_named(name)
        assert entry.modes(), name
        assert entry_for(entry.cls) is entry
