"""Shared helpers for tests that build mmseg models and run trainings."""
import os
import subprocess
import sys
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import qkv_plugins  # noqa: F401  (registers everything)
from qkv_plugins.compat import sync_bn_to_bn

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / 'configs'


def build_segmentor(config, **model_overrides):
    """Build a config's model on CPU: BN for SyncBN, no pretrained weights."""
    from mmseg.registry import MODELS
    cfg = config if isinstance(config, Config) else Config.fromfile(config)
    for key, value in model_overrides.items():
        cfg.model[key] = value  # replace, not merge
    cfg.model = sync_bn_to_bn(cfg.model)
    cfg.model.pretrained = None
    if 'init_cfg' in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None
    init_default_scope('mmseg')
    return MODELS.build(cfg.model)


def run_tool(*args, env=None, timeout=600, check=True):
    """Run ``python tools/<args>`` in the repo with this interpreter."""
    full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
    result = subprocess.run([sys.executable, *map(str, args)], cwd=REPO,
                            env=full_env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f'{args} failed ({result.returncode}):\n'
                             f'{result.stdout[-4000:]}\n{result.stderr[-4000:]}')
    return result


def seg_logits(model, size=(64, 64)):
    torch.manual_seed(0)
    model.eval()
    with torch.no_grad():
        return model(torch.randn(1, 3, *size), mode='tensor')
