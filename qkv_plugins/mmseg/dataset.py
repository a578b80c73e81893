"""The embedded dataset as an mmseg dataset, checked against its manifest."""
from mmseg.datasets import BaseSegDataset
from mmseg.registry import DATASETS

from ..data import SPLITS, TRACKS, verify_dataset
from ..data.drawing import PALETTE


@DATASETS.register_module()
class QKVSyntheticDataset(BaseSegDataset):
    """One track of the generated dataset (``tools/make_dataset.py``).

    Args:
        track: A name in :data:`qkv_plugins.data.TRACKS`.
        split: ``'train'``, ``'val'`` or ``'test'`` (held out).
        data_root: The generated tree (``data/qkv_synthetic``).
        **kwargs: Other BaseSegDataset arguments (``pipeline``, ...).
    """

    def __init__(self, track: str, split: str, data_root: str,
                 **kwargs) -> None:
        if track not in TRACKS:
            raise ValueError(f'QKVSyntheticDataset: track={track!r} is not '
                             f'a track; known: {sorted(TRACKS)}')
        if split not in SPLITS:
            raise ValueError(f'QKVSyntheticDataset: split={split!r}; '
                             f'allowed: {tuple(SPLITS)}')
        # Before anything reads a file: a clear error naming the fix.
        verify_dataset(data_root, track, split)
        classes = TRACKS[track].classes
        palette = [list(rgb) for rgb in PALETTE[:len(classes)]]
        self.track = track
        super().__init__(
            data_root=data_root,
            data_prefix=dict(img_path=f'{track}/img_dir/{split}',
                             seg_map_path=f'{track}/ann_dir/{split}'),
            img_suffix='.png',
            seg_map_suffix='.png',
            metainfo=dict(classes=classes, palette=palette),
            reduce_zero_label=False,
            **kwargs)
