"""The embedded study's tracks: generators of (image, label) pairs.

Each track states the hypothesis it tests; ``TRACKS`` maps names to them.
"""
from dataclasses import dataclass
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import numpy as np

from .drawing import (COLOUR_NAMES, PALETTE, grey_noise, paint, shape_mask,
                      to_uint8)

IMAGE_SIZE = 128
CYCLE = ('circle', 'square', 'triangle')
DISTRACTORS = ('plus', 'ring')
IGNORE_INDEX = 255  # mmseg's ignore label
# grouping: disc groups, their grey levels, the norm of the class tint (RGB)
# and the per-channel noise std
GROUPS = 3
DISCS_PER_GROUP = 6
GROUP_GREYS = (80.0, 140.0, 200.0)
BACKGROUND_GREY = 20.0
GROUPING_TINT = 5.0
GROUPING_NOISE = 45.0


class Sample(NamedTuple):
    """One generated image with its labels."""
    image: np.ndarray  # [H, W, 3] uint8 RGB
    label: np.ndarray  # [H, W] uint8 class ids, IGNORE_INDEX unlabelled
    # cyclic only: [H, W] uint8 object ids (1 circle, 2 square, 3 triangle,
    # 0 anything else); object k's label comes from object source_of(k)
    objects: Optional[np.ndarray] = None


def source_of(obj: np.ndarray) -> np.ndarray:
    """Cyclic track: the object id whose colour object ``obj`` is labelled
    with (circle -> square -> triangle -> circle); 0 for 0."""
    return np.where(obj > 0, obj % 3 + 1, 0)


@dataclass(frozen=True)
class Track:
    """A generated task: its classes, its hypothesis, its sample function."""
    name: str
    classes: Tuple[str, ...]
    hypothesis: str
    sample: Callable[[np.random.Generator], Sample]


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


def cyclic_sample(rng: np.random.Generator) -> Sample:
    """A circle, a square and a triangle, each labelled with the colour of
    the next one in the cycle circle → square → triangle → circle; two or
    three distractors (plus, ring) in random colours. Background and
    distractors are not labelled (IGNORE_INDEX)."""
    size = IMAGE_SIZE
    image = grey_noise(rng, size, 128, 20)
    label = np.full((size, size), IGNORE_INDEX, np.uint8)
    objects = np.zeros((size, size), np.uint8)
    n_distractors = int(rng.integers(2, 4))
    radii = rng.uniform(10, 15, 3 + n_distractors)
    centres = _place(rng, radii, size)
    colours = rng.integers(0, len(PALETTE), 3 + n_distractors)
    kinds = CYCLE + tuple(rng.choice(DISTRACTORS, n_distractors))
    for i, (kind, (cy, cx), r) in enumerate(zip(kinds, centres, radii)):
        mask = shape_mask(kind, cy, cx, r, size)
        paint(image, mask, PALETTE[colours[i]], rng, noise=12)
        if i < 3:
            label[mask] = colours[(i + 1) % 3]
            objects[mask] = i + 1
    return Sample(to_uint8(image), label, objects)


def grouping_sample(rng: np.random.Generator) -> Sample:
    """Three groups of discs scattered over a dark background; the discs of
    a group share a grey level and a faint colour tint (the class), buried in
    heavy per-pixel noise. One disc holds too few pixels to read its tint;
    the group as a whole holds enough. Background is not labelled."""
    size = IMAGE_SIZE
    n_discs = GROUPS * DISCS_PER_GROUP
    radii = rng.uniform(7, 9, n_discs)
    centres = _place(rng, radii, size, gap=2.0)
    greys = rng.permutation(GROUP_GREYS)
    classes = rng.integers(0, len(PALETTE), GROUPS)
    palette = np.asarray(PALETTE, np.float32)
    tints = palette - palette.mean(axis=1, keepdims=True)
    tints *= GROUPING_TINT / np.linalg.norm(tints, axis=1, keepdims=True)
    image = np.full((size, size, 3), BACKGROUND_GREY, np.float32)
    label = np.full((size, size), IGNORE_INDEX, np.uint8)
    for i, ((cy, cx), r) in enumerate(zip(centres, radii)):
        group = i % GROUPS
        mask = shape_mask('circle', cy, cx, r, size)
        image[mask] = greys[group] + tints[classes[group]]
        label[mask] = classes[group]
    image += rng.normal(0, GROUPING_NOISE, image.shape).astype(np.float32)
    return Sample(to_uint8(image), label)


TRACKS: Dict[str, Track] = {
    'cyclic': Track(
        name='cyclic',
        classes=COLOUR_NAMES,
        hypothesis=(
            'Each shape takes the colour of the next shape in the cycle '
            'circle → square → triangle → circle. Attention must route a '
            'pixel to one specific object unlike itself. A symmetric score '
            '(Q = K) cannot rank A over C for B, B over A for C and C over B '
            'for A at once, so separate Q/K projections should win; '
            'distractors make "attend to everything but me" fail. Only the '
            'three cycle objects are labelled.'),
        sample=cyclic_sample),
    'grouping': Track(
        name='grouping',
        classes=COLOUR_NAMES,
        hypothesis=(
            'Three groups of six discs scattered over the image; the discs '
            'of a group share a grey level and a faint colour tint (the '
            'class) under heavy per-pixel noise. One disc holds too few '
            'pixels to read the tint; the group holds enough. Pooling over '
            'pixels alike in grey level is the whole job, which a symmetric '
            'similarity does: shared or no projections should do as well as '
            'separate ones.'),
        sample=grouping_sample),
}
