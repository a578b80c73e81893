"""The embedded, generated dataset of the study (numpy + PIL only)."""
from .tracks import IMAGE_SIZE, TRACKS, Sample, Track, source_of
from .writer import (DEFAULT_ROOT, SPLITS, DatasetError, make_dataset,
                     verify_dataset)

__all__ = ['TRACKS', 'Track', 'Sample', 'source_of', 'IMAGE_SIZE', 'DEFAULT_ROOT', 'SPLITS', 'DatasetError',
           'make_dataset', 'verify_dataset']
