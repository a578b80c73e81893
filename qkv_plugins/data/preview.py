"""A PNG of sample images (top row) and their labels (bottom row)."""
from pathlib import Path

import numpy as np
from PIL import Image

from .drawing import PALETTE
from .tracks import IGNORE_INDEX, TRACKS

IGNORED_RGB = (40, 40, 40)  # unlabelled pixels


def label_to_rgb(label: np.ndarray) -> np.ndarray:
    lut = np.zeros((256, 3), np.uint8)
    lut[:len(PALETTE)] = PALETTE
    lut[IGNORE_INDEX] = IGNORED_RGB
    return lut[label]


def render_samples(track: str, count: int, path: str, seed: int = 0,
                   scale: int = 2) -> Path:
    """Draw ``count`` fresh samples of ``track`` with their labels."""
    from ..io import atomic_path
    rng = np.random.default_rng(seed)
    columns = []
    for _ in range(count):
        sample = TRACKS[track].sample(rng)
        columns.append(
            np.concatenate([sample.image, label_to_rgb(sample.label)], axis=0))
    sheet = Image.fromarray(np.concatenate(columns, axis=1))
    sheet = sheet.resize((sheet.width * scale, sheet.height * scale),
                         Image.NEAREST)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format='PNG')
    return Path(path)
