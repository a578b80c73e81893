"""Deployment of the blocks: the kernels' tracer switch, ONNX export with
ONNX Runtime parity at other (odd) sizes, ``torch.export`` with dynamic
height and width, ``torch.compile`` without graph breaks and a compiled
training step that matches eager.

CI runs a representative subset (one case per block, tiny shapes); the full
grid (every block × mode × similarity × mask_self × variant) is marked
``deploy`` (``make test-deploy``; the default run deselects it in
setup.cfg). Without torch >= 2.6 and onnx / onnxruntime / onnxscript (the
oldest stack, torch 2.4, has no ``dynamo=True`` exporter) everything here
is skipped with that reason.
"""
import pytest
import torch
import torch.nn as nn

from qkv_plugins.bench.onnx_runtime import missing_requirements

MISSING = missing_requirements()
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason='deployment checks need ' + ', '.join(MISSING))

if not MISSING:
    from qkv_plugins.bench.deploy import (CHECK_SIZES, ONNX_TOLERANCE,
                                          DeployCase, deploy_cases,
                                          graph_breaks, onnx_parity)
    from qkv_plugins.bench.onnx_runtime import export_onnx
    from qkv_plugins.layers import kernels
    from qkv_plugins.layers.autograd_kernels import (
        CrissCrossFunction, DenseAttentionFunction,
        SelfMaskedAttentionFunction)

    GRID = deploy_cases()
else:
    GRID = []


def case(layer: str, **options) -> 'DeployCase':
    full = {'similarity': 'dot', 'mask_self': False, **options}
    return DeployCase(layer, tuple(full.items()))


# One case per block for CI: each hits what did not export or broke the
# graph before the switch (Q = K into a Function, the in-place diagonal).
SUBSET = [] if MISSING else [
    case('nonlocal', qkv_mode='shared_qk', similarity='cosine',
         mask_self=True),
    case('ccnet', qkv_mode='shared', recurrence=2),
    case('dnl', qkv_mode='shared_qk', mask_self=True),
    case('gcnet', qkv_mode='query_independent'),
    case('mha', qkv_mode='identity_qk', sr_ratio=2),
]
label = (lambda c: c.label.replace(' ', '-'))
deploy = pytest.mark.deploy


def _x(channels: int = 16, size=(8, 8), seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, channels, *size, generator=generator)


# -- the switch -------------------------------------------------------------

# What traceable() said in _Sees.forward (a global: export restores the
# attributes a forward changes)
SEEN = []


class _Sees(nn.Module):
    """Records what ``traceable()`` says each time it runs."""

    def forward(self, x):
        SEEN.append(kernels.traceable())
        return x * 2


def test_traceable_is_false_in_eager_and_true_under_every_tracer(tmp_path):
    module, x = _Sees(), _x()
    SEEN.clear()
    module(x)
    assert SEEN == [False]
    compiled = torch.compile(lambda t: t + kernels.traceable(),
                             backend='eager', fullgraph=True)
    assert compiled(torch.zeros(1)).item() == 1
    torch._dynamo.reset()
    for trace in (lambda: torch.export.export(module, (x, )),
                  lambda: torch.jit.trace(module, (x, ), check_trace=False),
                  lambda: export_onnx(module, x, tmp_path / 'seen.onnx')):
        SEEN.clear()
        trace()
        assert SEEN and all(SEEN), SEEN
    SEEN.clear()
    with kernels.tracer_paths():
        module(x)
    assert SEEN == [True] and not kernels.traceable()


# (case, channels, the Function eager runs)
FUNCTION_CASES = [] if MISSING else [
    (case('nonlocal', qkv_mode='shared_qk', mask_self=True), 16,
     SelfMaskedAttentionFunction),
    (case('nonlocal', qkv_mode='identity'), 144, DenseAttentionFunction),
    (case('ccnet', qkv_mode='shared', recurrence=2), 16, CrissCrossFunction),
]


@pytest.mark.parametrize('index', range(3))
def test_eager_runs_the_function_and_a_compiled_graph_never(index,
                                                            monkeypatch):
    """The same forward: eager names the Function; compiled in one graph
    (fullgraph: no break) with the Function made to fail if called."""
    c, channels, function = FUNCTION_CASES[index]
    layer = c.build(channels).train()
    x = _x(channels).requires_grad_()
    with kernels.paths_taken() as taken:
        layer(x)
    assert set(taken) == {function.__name__}

    def refuse(*args, **kwargs):
        raise AssertionError(f'{function.__name__} ran under a tracer')

    monkeypatch.setattr(function, 'apply', refuse)
    compiled = torch.compile(layer, backend='eager', fullgraph=True)
    compiled(x).sum().backward()
    torch._dynamo.reset()


def _step(layer: nn.Module, x: torch.Tensor):
    """Output and every gradient of ``sum(y · w)``."""
    x = x.detach().requires_grad_()
    y = layer(x)
    weight = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
    (y * weight).sum().backward()
    grads = [x.grad] + [p.grad.clone() for p in layer.parameters()
                        if p.grad is not None]
    layer.zero_grad(set_to_none=True)
    return [y.detach()] + grads


def _assert_close(got, expected, rtol=1e-9, atol=1e-10):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


# The paths are compared in float64 (each takes the path it takes in
# float32): in float32 two summation orders differ by ~1e-5 in gradients
# that cancel to about 0 (a key bias's, which softmax makes exactly 0 in
# exact arithmetic), which says nothing about the math.
def _tracer_path_matches(c: 'DeployCase', channels: int = 16) -> None:
    layer = c.build(channels).train().double()
    x = _x(channels, (7, 9)).double()
    fast = _step(layer, x)
    with kernels.tracer_paths():
        plain = _step(layer, x)
    _assert_close(plain, fast)


@pytest.mark.parametrize('index', range(3))
def test_tracer_path_equals_the_function_forward_and_backward(index):
    c, channels, _ = FUNCTION_CASES[index]
    _tracer_path_matches(c, channels)


# -- ONNX -------------------------------------------------------------------

def _onnx_parity(c: 'DeployCase', tmp_path) -> None:
    parity = onnx_parity(c.build(), tmp_path / 'block.onnx')
    assert parity.sizes == CHECK_SIZES  # odd sizes, another aspect ratio
    assert parity.scale > 0.1, 'the block must act (parameters redrawn)'
    assert parity.ok, (f'{c.label}: max |Δ| {parity.max_abs_diff:.2e} > '
                       f'{ONNX_TOLERANCE} · max |y − x| {parity.scale:.3g}')


@pytest.mark.parametrize('c', SUBSET, ids=label)
def test_onnx_runtime_matches_eager_at_other_sizes(c, tmp_path):
    _onnx_parity(c, tmp_path)


def _torch_export(c: 'DeployCase') -> None:
    layer = c.build()
    dim = torch.export.Dim.DYNAMIC
    program = torch.export.export(layer, (_x(), ),
                                  dynamic_shapes=({2: dim, 3: dim}, ))
    x = _x(size=(7, 9), seed=1)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), layer(x), rtol=1e-5,
                                   atol=1e-5)


def test_torch_export_takes_dynamic_height_and_width():
    _torch_export(SUBSET[0])


# -- torch.compile ------------------------------------------------------------

def _no_breaks(c: 'DeployCase') -> None:
    layer = c.build()
    for train in (False, True):
        found = graph_breaks(layer, _x(), train)
        assert (found.graphs, found.breaks) == (1, 0), (c.label, train,
                                                        found.reasons)


@pytest.mark.parametrize('c', SUBSET, ids=label)
def test_compiles_in_one_graph_in_eval_and_training(c):
    _no_breaks(c)


def _compiled_step_matches(c: 'DeployCase') -> None:
    """In float64, as :func:`_tracer_path_matches` (eager runs the fast
    path, the compiled graph the tracer's)."""
    layer = c.build().train().double()
    x = _x(size=(7, 9)).double()
    eager = _step(layer, x)
    torch._dynamo.reset()
    compiled = torch.compile(layer, backend='aot_eager', dynamic=False)
    _assert_close(_step(compiled, x), eager)
    torch._dynamo.reset()


def test_compiled_training_step_matches_eager():
    """Criss-cross with Q = K = V: seven graph breaks before the switch."""
    _compiled_step_matches(SUBSET[1])


# -- the full grid (make test-deploy) -------------------------------------------

@deploy
@pytest.mark.parametrize('c', GRID, ids=label)
def test_grid_onnx_runtime_matches_eager(c, tmp_path):
    _onnx_parity(c, tmp_path)


@deploy
@pytest.mark.parametrize('c', GRID, ids=label)
def test_grid_torch_export_takes_dynamic_height_and_width(c):
    _torch_export(c)


@deploy
@pytest.mark.parametrize('c', GRID, ids=label)
def test_grid_compiles_in_one_graph(c):
    _no_breaks(c)


@deploy
@pytest.mark.parametrize('c', GRID, ids=label)
def test_grid_compiled_training_step_matches_eager(c):
    _compiled_step_matches(c)


@deploy
@pytest.mark.parametrize('c', GRID, ids=label)
def test_grid_tracer_path_equals_the_fast_path(c):
    _tracer_path_matches(c)


def test_the_grid_covers_every_block_and_variant():
    counts = {}
    for c in GRID:
        counts[c.layer] = counts.get(c.layer, 0) + 1
    # nonlocal: 6 modes × 2 similarities − 1 refused, × mask_self; ccnet the
    # same × recurrence 1, 2; dnl: 5 modes; gcnet: its one case; mha: 5
    # modes × 2 similarities × (sr_ratio 1 × mask_self, sr_ratio 2)
    assert counts == {'nonlocal': 22, 'ccnet': 44, 'dnl': 20, 'gcnet': 1,
                      'mha': 30}
