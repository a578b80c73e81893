"""Every layer × mode × similarity × mask_self: shapes, paths, gradients."""
import pytest
import torch

from qkv_plugins import QKV_MODES, SIMILARITIES, record_attention
from qkv_plugins.layers.kernels import dense_attention
from qkv_plugins.layers.options import REFUSED_SIMILARITIES

from .conftest import LAYERS, build_layer

layer_kinds = pytest.mark.parametrize('kind', sorted(LAYERS))
modes = pytest.mark.parametrize('qkv_mode', sorted(QKV_MODES))
# every (mode, similarity) pair a layer accepts; refusals: test_errors.py
mode_similarities = pytest.mark.parametrize(
    'qkv_mode,similarity',
    [(m, s) for m in sorted(QKV_MODES) for s in SIMILARITIES
     if (m, s) not in REFUSED_SIMILARITIES])
mask_selfs = pytest.mark.parametrize('mask_self', [False, True])


@layer_kinds
@mode_similarities
@mask_selfs
def test_explicit_path_equals_forward(kind, qkv_mode, similarity, mask_self):
    layer = build_layer(kind, qkv_mode=qkv_mode, similarity=similarity,
                        mask_self=mask_self)
    x = torch.randn(2, 16, 5, 7)
    fast = layer(x)
    explicit, weights = layer.forward_with_weights(x, need_weights=True)
    torch.testing.assert_close(fast, explicit, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(fast, x), 'attention did not change the input'
    hops = weights if isinstance(weights, list) else [weights]
    for w in hops:
        torch.testing.assert_close(w.sum(-1), torch.ones_like(w.sum(-1)))


@layer_kinds
@mode_similarities
@mask_selfs
def test_gradients_reach_every_parameter(kind, qkv_mode, similarity,
                                         mask_self):
    layer = build_layer(kind, qkv_mode=qkv_mode, similarity=similarity,
                        mask_self=mask_self)
    x = torch.randn(2, 16, 4, 6, requires_grad=True)
    layer(x).square().sum().backward()
    assert x.grad is not None and x.grad.isfinite().all()
    # A key bias adds q·b to every logit of a query: softmax ignores it.
    invariant = {'proj.key.bias'} if similarity == 'dot' else set()
    for name, p in layer.named_parameters():
        assert p.grad is not None, name
        if name not in invariant:
            assert p.grad.abs().sum() > 0, f'{name} got a zero gradient'


@layer_kinds
@modes
def test_starts_as_identity_with_gradient_at_the_zero_factor(kind, qkv_mode):
    layer = LAYERS[kind](16, qkv_mode=qkv_mode)
    x = torch.randn(1, 16, 4, 5)
    out = layer(x)
    torch.testing.assert_close(out, x)
    out.square().sum().backward()
    zero = layer.out.conv.weight if kind == 'nonlocal' else layer.gamma
    assert zero.grad.abs().sum() > 0


@layer_kinds
@mode_similarities
@mask_selfs
@pytest.mark.parametrize('size', [(1, 1), (1, 6), (6, 1)])
def test_degenerate_maps_stay_finite(kind, qkv_mode, similarity, mask_self,
                                     size):
    layer = build_layer(kind, qkv_mode=qkv_mode, similarity=similarity,
                        mask_self=mask_self)
    x = torch.randn(2, 16, *size, requires_grad=True)
    out, weights = layer.forward_with_weights(x)
    out.sum().backward()
    assert out.isfinite().all() and x.grad.isfinite().all()
    torch.testing.assert_close(layer(x), out, rtol=1e-5, atol=1e-5)


@layer_kinds
@mode_similarities
@mask_selfs
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_autocast_with_large_activations_stays_finite(kind, qkv_mode,
                                                      similarity, mask_self,
                                                      dtype):
    layer = build_layer(kind, qkv_mode=qkv_mode, similarity=similarity,
                        mask_self=mask_self)
    x = torch.randn(2, 16, 5, 6) * 300
    with torch.autocast('cpu', dtype=dtype):
        out = layer(x)
        explicit, _ = layer.forward_with_weights(x)
    assert out.isfinite().all() and explicit.isfinite().all()


def test_mask_self_gives_zero_weight_to_own_position():
    layer = build_layer('nonlocal', qkv_mode='shared', mask_self=True)
    _, weights = layer.forward_with_weights(torch.randn(1, 16, 3, 4))
    assert weights.diagonal(dim1=-2, dim2=-1).abs().max() == 0

    cca = build_layer('ccnet', qkv_mode='shared', mask_self=True)
    _, hops = cca.forward_with_weights(torch.randn(1, 16, 3, 4))
    h = 3  # rows of the 3 x 4 map
    for hop in hops:
        own_col = hop[..., :h].diagonal(dim1=1, dim2=3)  # [B, W, H]
        own_row = hop[..., h:].diagonal(dim1=2, dim2=3)  # [B, H, W]
        assert own_col.abs().max() == 0 and own_row.abs().max() == 0


def test_shared_qk_attends_mostly_to_itself_without_mask():
    """Q = K makes the own key score highest under cosine similarity."""
    layer = build_layer('nonlocal', qkv_mode='shared_qk',
                        similarity='cosine')
    _, weights = layer.forward_with_weights(torch.randn(1, 16, 4, 4))
    top1 = weights.argmax(-1)[0, 0]
    assert torch.equal(top1, torch.arange(16))


@pytest.mark.parametrize('aliases', ['none', 'qk', 'qkv', 'kv'])
@pytest.mark.parametrize('block', [7 * 4 * 30, 10**6])  # 7-query chunks, one
def test_masked_chunks_match_explicit(monkeypatch, aliases, block):
    """The self-masked fast path (query chunks, FlashAttention-style
    backward) equals the explicit path in values and gradients."""
    monkeypatch.setattr(
        'qkv_plugins.layers.autograd_kernels.MASKED_BLOCK_ELEMENTS', block)
    q, k, v = (torch.randn(2, 2, 30, 8, dtype=torch.float64,
                           requires_grad=True) for _ in range(3))
    k_in = q if aliases in ('qk', 'qkv') else k
    v_in = {'qkv': q, 'kv': k}.get(aliases, v)
    results = []
    for need_weights in (False, True):
        out, _ = dense_attention(q, k_in, v_in, 0.3, mask_self=True,
                                 need_weights=need_weights)
        grads = torch.autograd.grad(out, (q, k, v), torch.ones_like(out),
                                    allow_unused=True)
        results.append((out, grads))
    (fast, fast_grads), (explicit, explicit_grads) = results
    torch.testing.assert_close(fast, explicit)
    for got, expected in zip(fast_grads, explicit_grads):
        assert (got is None) == (expected is None)
        if got is not None:
            torch.testing.assert_close(got, expected)


@pytest.mark.parametrize('num_heads', [1, 2, 4])
def test_heads_split_channels(num_heads):
    layer = build_layer('nonlocal', in_channels=32, num_heads=num_heads)
    _, weights = layer.forward_with_weights(torch.randn(2, 32, 3, 3))
    assert weights.shape == (2, num_heads, 9, 9)


@layer_kinds
def test_record_attention_collects_without_changing_output(kind):
    layer = build_layer(kind, recurrence=2) if kind == 'ccnet' else \
        build_layer(kind)
    model = torch.nn.Sequential(layer)
    x = torch.randn(1, 16, 4, 5)
    expected = model(x)
    with record_attention(model) as maps:
        out = model(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert list(maps) == ['0']
    assert len(maps['0']) == (2 if kind == 'ccnet' else 1)
    model(x)
    assert len(maps['0']) == (2 if kind == 'ccnet' else 1), \
        'recording went on after the context closed'


def test_cosine_logit_scale_is_clamped():
    layer = build_layer('nonlocal', similarity='cosine', qkv_mode='shared')
    with torch.no_grad():
        layer.similarity.logit_scale.fill_(10.0)
    x = torch.randn(1, 16, 2, 2)
    q, k, _ = layer.similarity(x, x, dim=1)
    torch.testing.assert_close((q * k).sum(1), torch.full((1, 2, 2), 100.0))


@pytest.mark.parametrize('qkv_mode', sorted(QKV_MODES))
@mask_selfs
def test_fast_path_uses_fused_kernel_not_math(qkv_mode, mask_self):
    """SDPA silently falls back to an N×N math kernel on strided inputs;
    with ``mask_self`` (no fused kernel takes a diagonal mask without an
    N×N one) the chunked self-masked Function runs instead."""
    layer = build_layer('nonlocal', qkv_mode=qkv_mode, mask_self=mask_self)
    x = torch.randn(2, 16, 6, 6, requires_grad=True)
    with torch.profiler.profile() as prof:
        layer(x).sum().backward()
    ops = {event.key for event in prof.key_averages()}
    fused = 'aten::_scaled_dot_product_flash_attention_for_cpu' in ops
    masked = 'SelfMaskedAttentionFunction' in ops
    assert (fused, masked) == (not mask_self, mask_self), sorted(ops)
    assert 'aten::_scaled_dot_product_attention_math' not in ops


@mask_selfs
def test_cpu_dispatch_for_wide_heads_agrees_with_fused(monkeypatch,
                                                       mask_self):
    q, k = torch.randn(2, 1, 50, 160), torch.randn(2, 1, 50, 160)
    v = torch.randn(2, 1, 50, 96)
    explicit, _ = dense_attention(q, k, v, 0.1, mask_self)
    monkeypatch.setattr(
        'qkv_plugins.layers.kernels.CPU_EXPLICIT_MAX_POSITIONS', 0)
    fused, _ = dense_attention(q, k, v, 0.1, mask_self)
    torch.testing.assert_close(explicit, fused, rtol=1e-4, atol=1e-5)


# --- hand-written backward (qkv_plugins.layers.autograd_kernels) ---------

from qkv_plugins.layers.autograd_kernels import (  # noqa: E402
    CrissCrossFunction, DenseAttentionFunction)

aliasings = pytest.mark.parametrize('aliasing', ['none', 'qk', 'qkv'])
# gradcheck perturbs each leaf once: aliased roles are rebuilt from one leaf
_REBUILD = {'none': lambda q, k, v: (q, k, v), 'qk': lambda q, v: (q, q, v),
            'qkv': lambda q: (q, q, q)}


def _leaves(aliasing, qk_shape, v_shape):
    """float64 leaves for ``_REBUILD[aliasing]``."""
    shapes = {'none': (qk_shape, qk_shape, v_shape), 'qk': (qk_shape, v_shape),
              'qkv': (qk_shape, )}[aliasing]
    return tuple(torch.randn(*s, dtype=torch.float64, requires_grad=True)
                 for s in shapes)


@aliasings
@mask_selfs
@pytest.mark.parametrize('scale', [1.0, 0.37])
@pytest.mark.parametrize('n', [1, 2, 7])
@pytest.mark.parametrize('chunk', [1024, 3])  # one backward chunk, or several
@pytest.mark.parametrize('block', [256, 2])  # one dL + dLᵀ block, or several
def test_dense_function_gradcheck(aliasing, mask_self, scale, n, chunk, block,
                                  monkeypatch):
    monkeypatch.setattr(
        'qkv_plugins.layers.autograd_kernels.BACKWARD_QUERY_CHUNK', chunk)
    monkeypatch.setattr(
        'qkv_plugins.layers.autograd_kernels.SYMMETRIZE_BLOCK', block)
    leaves = _leaves(aliasing, (2, n, 3), (2, n, 4))

    def fn(*t):
        q, k, v = _REBUILD[aliasing](*t)
        return DenseAttentionFunction.apply(q, k, v, scale, mask_self and n > 1)

    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize('aliasing', ['none', 'qk'])
def test_dense_function_second_backward_recomputes(aliasing):
    """The backward overwrites its weights; a retained graph's second
    backward must still give the same gradients."""
    leaves = _leaves(aliasing, (2, 6, 3), (2, 6, 4))
    out = DenseAttentionFunction.apply(*_REBUILD[aliasing](*leaves), 0.5,
                                       False)
    first = torch.autograd.grad(out.sum(), leaves, retain_graph=True)
    second = torch.autograd.grad(out.sum(), leaves)
    for a, b in zip(first, second):
        torch.testing.assert_close(a, b)  # float64 tolerances


def test_functions_refuse_double_backward():
    q = torch.randn(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    for out in (DenseAttentionFunction.apply(q[0], q[0], q[0], 1.0, False),
                CrissCrossFunction.apply(q, q, q, 1.0, False)):
        (grad, ) = torch.autograd.grad(out.pow(2).sum(), q,
                                       create_graph=True)
        with pytest.raises(RuntimeError, match='once_differentiable'):
            grad.sum().backward()


@aliasings
@mask_selfs
@pytest.mark.parametrize('scale', [1.0, 0.37])
@pytest.mark.parametrize('size', [(3, 4), (1, 1), (1, 5), (4, 1)])
def test_criss_cross_function_gradcheck(aliasing, mask_self, scale, size):
    leaves = _leaves(aliasing, (2, 3, *size), (2, 4, *size))
    mask = mask_self and size != (1, 1)

    def fn(*t):
        q, k, v = _REBUILD[aliasing](*t)
        return CrissCrossFunction.apply(q, k, v, scale, mask)

    assert torch.autograd.gradcheck(fn, leaves)


def _output_and_grads(layer, x, explicit):
    out = (layer.forward_with_weights(x, need_weights=True)[0]
           if explicit else layer(x))
    params = [p for p in layer.parameters()]
    grads = torch.autograd.grad(out, [x] + params,
                                torch.linspace(-1, 1, out.numel(),
                                               dtype=out.dtype).view_as(out),
                                allow_unused=True)
    return out, grads


@pytest.mark.parametrize('kind,path', [('nonlocal', 'fused'),
                                       ('nonlocal', 'function'),
                                       ('ccnet', 'function')])
@mode_similarities
@mask_selfs
@pytest.mark.parametrize('size', [(4, 6), (1, 5), (5, 1)])
def test_fast_path_equals_plain_autograd(monkeypatch, kind, path, qkv_mode,
                                         similarity, mask_self, size):
    """Outputs and gradients of every parameter and of the input, float64."""
    if path == 'function' and kind == 'nonlocal':
        # every head width takes the CPU exception's Function
        monkeypatch.setattr('qkv_plugins.layers.kernels.CPU_FUSED_MAX_HEAD_DIM',
                            0)
    layer = build_layer(kind, qkv_mode=qkv_mode, similarity=similarity,
                        mask_self=mask_self,
                        **({'recurrence': 2} if kind == 'ccnet' else {}))
    layer.double()
    x = torch.randn(2, 16, *size, dtype=torch.float64, requires_grad=True)
    fast, fast_grads = _output_and_grads(layer, x, explicit=False)
    ref, ref_grads = _output_and_grads(layer, x, explicit=True)
    torch.testing.assert_close(fast, ref)  # float64 tolerances
    for a, b in zip(fast_grads, ref_grads):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)


@mask_selfs
@pytest.mark.parametrize('qkv_mode', ['identity', 'identity_qk', 'separate'])
def test_wide_head_dispatch_takes_the_function(qkv_mode, mask_self):
    """In fp32 the CPU exception (heads > 128 wide) runs the Function."""
    layer = build_layer('nonlocal', in_channels=160, qkv_mode=qkv_mode,
                        mask_self=mask_self, reduction=1)
    x = torch.randn(2, 160, 5, 6, requires_grad=True)
    with torch.profiler.profile() as prof:
        fast, grads = _output_and_grads(layer, x, explicit=False)
    names = {event.key for event in prof.key_averages()}
    assert 'DenseAttentionFunction' in names
    ref, ref_grads = _output_and_grads(layer, x, explicit=True)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
