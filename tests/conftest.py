import pytest
import torch

import qkv_plugins
from qkv_plugins.layers import entry_named

# The layers the generic tests run through every mode of the switch, by
# catalog name (the disentangled and context blocks have their own files).
LAYERS = {name: entry_named(name).cls for name in ('nonlocal', 'ccnet')}


def build_layer(kind: str, in_channels: int = 16, **options):
    """A layer whose zero factor is set non-zero, so attention shows."""
    layer = LAYERS[kind](in_channels, **options)
    with torch.no_grad():
        if kind == 'nonlocal':
            torch.nn.init.normal_(layer.out.conv.weight, std=0.2)
        else:
            layer.gamma.fill_(0.7)
    return layer


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


__all__ = ['build_layer', 'LAYERS', 'qkv_plugins']


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """A small embedded dataset (16 train, 8 val, 8 test images per
    track)."""
    from qkv_plugins.data import make_dataset
    root = tmp_path_factory.mktemp('data') / 'qkv_synthetic'
    make_dataset(root, seed=0, splits={'train': 16, 'val': 8, 'test': 8},
                 log=lambda *_: None)
    return root
