"""CUDA-only checks (``pytest -m cuda``; the node check runs them): the
fused SDPA kernels hold no N×N matrix, bf16 / fp16 autocast stays close to
fp32, the einsum criss-cross path the GPU takes matches the CPU Function."""
import pytest
import torch

from qkv_plugins.layers import entries

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(),
                       reason='needs a CUDA device (run by the node check '
                       'on GPU machines)'),
]


@pytest.mark.parametrize('name', [e.name for e in entries()])
@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_autocast_matches_fp32(name, dtype):
    from qkv_plugins.check.items import TOLERANCE, _relative_error
    entry = next(e for e in entries() if e.name == name)
    torch.manual_seed(0)
    layer = entry.cls(64, **entry.bench_options).cuda()
    with torch.no_grad():
        for param in layer.parameters():
            param.normal_(0, 0.1)
    x = torch.randn(2, 64, 24, 32, device='cuda', requires_grad=True)
    expected = layer(x)
    with torch.autocast('cuda', dtype=dtype):
        got = layer(x)
    assert _relative_error(got, expected) < TOLERANCE[dtype]
    got.float().sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize('mask_self', [False, True])
def test_fast_path_holds_no_n_by_n_matrix(mask_self):
    from qkv_plugins import QKVNonLocal2d
    layer = QKVNonLocal2d(64, mask_self=mask_self).cuda()
    x = torch.randn(1, 64, 128, 128, device='cuda', requires_grad=True)
    layer(x).sum().backward()  # warm-up
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    layer(x).sum().backward()
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - before
    n_by_n = (128 * 128)**2 * 4
    assert extra < n_by_n / 4


def test_criss_cross_gpu_path_matches_the_cpu_function():
    from qkv_plugins import QKVCrissCrossAttention
    torch.manual_seed(0)
    layer = QKVCrissCrossAttention(32, recurrence=2).double()
    with torch.no_grad():
        layer.gamma.fill_(0.7)
    x = torch.randn(2, 32, 9, 11, dtype=torch.float64)
    expected = layer(x)
    got = layer.cuda()(x.cuda())
    torch.testing.assert_close(got.cpu(), expected)
