"""Bad input gets a ValueError that names the value and what is allowed."""
import pytest
import torch

from .conftest import LAYERS

layer_kinds = pytest.mark.parametrize('kind', sorted(LAYERS))


@layer_kinds
@pytest.mark.parametrize('option,value,message', [
    ('qkv_mode', 'shard', "qkv_mode must be one of 'separate', 'shared_qk', "
     "'shared', 'identity_qk', 'identity', 'query_independent', but got "
     "'shard'"),
    ('similarity', 'l2', "similarity must be one of 'dot', 'cosine', but got "
     "'l2'"),
    ('reduction', 64, 'reduction=64 leaves 16 // 64 = 0 projected channels'),
    ('reduction', 0, 'reduction must be a positive int, but got 0'),
])
def test_bad_option(kind, option, value, message):
    with pytest.raises(ValueError) as info:
        LAYERS[kind](16, **{option: value})
    assert message in str(info.value)


@layer_kinds
def test_cosine_is_refused_where_it_has_nothing_to_act_on(kind):
    with pytest.raises(ValueError, match="similarity='cosine' has nothing to "
                       "act on with qkv_mode='query_independent'"):
        LAYERS[kind](16, qkv_mode='query_independent', similarity='cosine')


@layer_kinds
def test_misspelled_option_is_not_swallowed(kind):
    with pytest.raises(TypeError, match='qkv_mod'):
        LAYERS[kind](16, qkv_mod='shared')


@pytest.mark.parametrize('qkv_mode,channels,role', [('separate', 8, 'Q/K'),
                                                    ('identity', 16, 'Q/K')])
def test_num_heads_must_divide(qkv_mode, channels, role):
    with pytest.raises(ValueError) as info:
        LAYERS['nonlocal'](16, qkv_mode=qkv_mode, num_heads=3)
    assert (f'num_heads=3 must divide the {role} channel count {channels}'
            in str(info.value))


@layer_kinds
def test_wrong_input_channels(kind):
    layer = LAYERS[kind](16)
    with pytest.raises(ValueError) as info:
        layer(torch.randn(1, 12, 4, 4))
    assert 'in_channels=16' in str(info.value)
    assert 'input has 12 channels' in str(info.value)


@layer_kinds
@pytest.mark.parametrize('shape', [(16, 4, 4), (1, 16, 4, 4, 2)])
def test_non_4d_input(kind, shape):
    with pytest.raises(ValueError, match=r'4-D input .* got a \d-D tensor'):
        LAYERS[kind](16)(torch.randn(*shape))


@pytest.mark.parametrize('qkv_mode', ['identity', 'separate'])
def test_reduction_is_checked_in_every_mode(qkv_mode):
    # identity builds no projection to in_channels // reduction, but a bad
    # reduction is still a mistake in the config: said at once.
    with pytest.raises(ValueError, match='reduction=8 leaves 4 // 8 = 0'):
        LAYERS['ccnet'](4, qkv_mode=qkv_mode)
