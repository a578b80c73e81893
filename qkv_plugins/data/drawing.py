"""Shape masks and colours on a small canvas (numpy only)."""
from typing import Tuple

import numpy as np

# Object colours (RGB); a label's class index is its colour index + offset.
PALETTE: Tuple[Tuple[int, int, int], ...] = (
    (220, 40, 40),    # red
    (40, 190, 40),    # green
    (50, 80, 235),    # blue
    (235, 205, 35),   # yellow
)
COLOUR_NAMES = ('red', 'green', 'blue', 'yellow')


def grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(ys, xs)``, each [size, size]."""
    return np.mgrid[0:size, 0:size].astype(np.float32) + 0.5


def shape_mask(kind: str, cy: float, cx: float, r: float,
               size: int) -> np.ndarray:
    """Boolean [size, size] mask of a shape centred at (cy, cx), radius r."""
    ys, xs = grid(size)
    dy, dx = ys - cy, xs - cx
    if kind == 'circle':
        return dy**2 + dx**2 <= r**2
    if kind == 'square':
        half = 0.85 * r
        return (np.abs(dy) <= half) & (np.abs(dx) <= half)
    if kind == 'triangle':  # apex up, base at cy + 0.8 r
        depth = dy + r  # 0 at the apex
        return (depth >= 0) & (dy <= 0.8 * r) & (np.abs(dx) <= depth / 1.8)
    if kind == 'plus':
        arm = 0.3 * r
        return ((np.abs(dy) <= arm) & (np.abs(dx) <= r)) | (
            (np.abs(dx) <= arm) & (np.abs(dy) <= r))
    if kind == 'ring':
        d2 = dy**2 + dx**2
        return (d2 <= r**2) & (d2 >= (0.55 * r)**2)
    raise ValueError(f'unknown shape {kind!r}')


def grey_noise(rng: np.random.Generator, size: int, mean: float,
               std: float) -> np.ndarray:
    """[size, size, 3] float image of grey noise."""
    grey = rng.normal(mean, std, (size, size, 1)).astype(np.float32)
    return np.repeat(grey, 3, axis=2)


def paint(image: np.ndarray, mask: np.ndarray, rgb, rng: np.random.Generator,
          noise: float) -> None:
    """Paint ``rgb`` with per-pixel noise into ``image`` where ``mask``."""
    count = int(mask.sum())
    image[mask] = np.asarray(rgb, np.float32) + rng.normal(
        0, noise, (count, 3)).astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
