"""The embedded study's tracks: generators of (image, label) pairs.

Each track states the hypothesis it tests; ``TRACKS`` maps names to them.
"""
from dataclasses import dataclass
from typing import Callable, Dict, Tuple

import numpy as np

from .drawing import (COLOUR_NAMES, PALETTE, grey_noise, grid, paint,
                      shape_mask, to_uint8)

IMAGE_SIZE = 128
CYCLE = ('circle', 'square', 'triangle')
DISTRACTORS = ('plus', 'ring')


@dataclass(frozen=True)
class Track:
    """A generated task: its classes, its hypothesis, its sample function."""
    name: str
    classes: Tuple[str, ...]
    hypothesis: str
    sample: Callable[[np.random.Generator], Tuple[np.ndarray, np.ndarray]]


def _place(rng: np.random.Generator, radii, size: int, gap: float = 3.0):
    """Centres for discs of the given radii, inside the canvas and apart."""
    for _ in range(1000):
        centres = []
        for r in radii:
            for _ in range(200):
                cy, cx = rng.uniform(r + 1, size - r - 1, 2)
                if all(np.hypot(cy - y, cx - x) >= r + q + gap
                       for (y, x), q in zip(centres, radii)):
                    centres.append((cy, cx))
                    break
            else:
                break
        if len(centres) == len(radii):
            return centres
    raise RuntimeError('could not place the objects; lower their count')


def cyclic_sample(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """A circle, a square and a triangle, each labelled with the colour of
    the next one in the cycle circle → square → triangle → circle; two or
    three distractors (plus, ring) in random colours are background."""
    size = IMAGE_SIZE
    image = grey_noise(rng, size, 128, 20)
    label = np.zeros((size, size), np.uint8)
    n_distractors = int(rng.integers(2, 4))
    radii = rng.uniform(10, 15, 3 + n_distractors)
    centres = _place(rng, radii, size)
    colours = rng.integers(0, len(PALETTE), 3 + n_distractors)
    kinds = CYCLE + tuple(rng.choice(DISTRACTORS, n_distractors))
    for i, (kind, (cy, cx), r) in enumerate(zip(kinds, centres, radii)):
        mask = shape_mask(kind, cy, cx, r, size)
        paint(image, mask, PALETTE[colours[i]], rng, noise=12)
        if i < 3:
            label[mask] = 1 + colours[(i + 1) % 3]
    return to_uint8(image), label


def grouping_sample(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Five grey regions (Voronoi cells, each its own grey level and heavy
    noise); a region's class is the colour of most of the small dots
    sprinkled over it, with clutter dots of other colours mixed in."""
    size = IMAGE_SIZE
    n_regions = 5
    ys, xs = grid(size)
    seeds = rng.uniform(0, size, (n_regions, 2))
    dist = (ys[None] - seeds[:, 0, None, None])**2 + (
        xs[None] - seeds[:, 1, None, None])**2
    region = dist.argmin(0)  # [size, size]
    greys = rng.permutation(np.linspace(55, 200, n_regions))
    classes = rng.integers(0, len(PALETTE), n_regions)
    image = np.empty((size, size, 3), np.float32)
    for k in range(n_regions):
        inside = region == k
        image[inside] = greys[k] + rng.normal(0, 25, (int(inside.sum()), 1))
    label = classes[region].astype(np.uint8)
    for k in range(n_regions):
        cells = np.argwhere(region == k)
        n_dots = max(2, len(cells) // 500)
        n_clutter = n_dots // 2
        picks = cells[rng.choice(len(cells), n_dots + n_clutter)]
        for j, (y, x) in enumerate(picks):
            colour = classes[k] if j < n_dots else rng.choice(
                [c for c in range(len(PALETTE)) if c != classes[k]])
            dot = shape_mask('square', y + 0.5, x + 0.5, 1.8, size)
            paint(image, dot & (region == k), PALETTE[colour], rng, noise=10)
    return to_uint8(image), label


TRACKS: Dict[str, Track] = {
    'cyclic': Track(
        name='cyclic',
        classes=('background', ) + COLOUR_NAMES,
        hypothesis=(
            'Each shape takes the colour of the next shape in the cycle '
            'circle → square → triangle → circle. Attention must route a '
            'pixel to one specific object unlike itself. A symmetric score '
            '(Q = K) cannot rank A over C for B, B over A for C and C over B '
            'for A at once, so separate Q/K projections should win; '
            'distractors make "attend to everything but me" fail.'),
        sample=cyclic_sample),
    'grouping': Track(
        name='grouping',
        classes=COLOUR_NAMES,
        hypothesis=(
            "A region's class is the majority colour of sparse dots spread "
            'over it; most pixels see no dot nearby. Pooling over pixels of '
            'the same region (alike in grey level) is the whole job, which a '
            'symmetric similarity does: shared or no projections should do '
            'as well as separate ones.'),
        sample=grouping_sample),
}
