"""Every mmengine checkpoint scheme loads with ``weights_only=True``.

mmengine 0.10.7 loads ``http(s)://`` checkpoints (and ``torchvision://``,
``open-mmlab://``, ``mmcls://``, which resolve to URLs) through
``torch.hub.load_state_dict_from_url``, whose ``weights_only`` defaults to
False: a served file could run code. Its other schemes (local files,
``pavi://``, ``s3://``, open-mmlab files in the mmengine home) call
``torch.load`` without ``weights_only``, which means False before torch 2.6.

We swap two names in ``mmengine.runner.checkpoint`` alone: ``load_url``
(downloads as before, then loads with ``weights_only=True``) and ``torch``
(the real module, except that ``load`` always passes ``weights_only=True``).
mmengine's own types pass through the allow-list of :mod:`.checkpoint`.
"""
import types
from typing import Optional

import torch


def safe_torch_load(f, map_location=None, **kwargs):
    """``torch.load`` that always refuses to run code
    (``weights_only=True``, whatever the caller asked)."""
    kwargs['weights_only'] = True
    return torch.load(f, map_location=map_location, **kwargs)


def safe_load_url(url: str,
                  model_dir: Optional[str] = None,
                  map_location=None,
                  progress: bool = True,
                  check_hash: bool = False,
                  file_name: Optional[str] = None):
    """mmengine's ``load_url``, loading with ``weights_only=True``."""
    return torch.hub.load_state_dict_from_url(
        url, model_dir=model_dir, map_location=map_location,
        progress=progress, check_hash=check_hash, file_name=file_name,
        weights_only=True)


class _WeightsOnlyTorch(types.ModuleType):
    """``torch`` as mmengine's checkpoint module sees it: every attribute is
    torch's, except ``load``."""

    def __init__(self) -> None:
        super().__init__('torch')
        self.load = safe_torch_load

    def __getattr__(self, name: str):
        return getattr(torch, name)


def enforce_weights_only() -> None:
    """Make every mmengine checkpoint scheme load with ``weights_only=True``
    (idempotent)."""
    from mmengine.runner import checkpoint
    checkpoint.load_url = safe_load_url
    if not isinstance(checkpoint.torch, _WeightsOnlyTorch):
        checkpoint.torch = _WeightsOnlyTorch()
