"""The embedded, generated dataset of the study (numpy + PIL only): tracks,
drawing, the writer with its manifest, previews."""
from .tracks import IGNORE_INDEX, IMAGE_SIZE, TRACKS, Sample, Track, source_of
from .writer import (DEFAULT_ROOT, SPLITS, DatasetError, make_dataset,
                     object_map, verify_dataset)

__all__ = ['TRACKS', 'Track', 'Sample', 'source_of', 'IGNORE_INDEX',
           'IMAGE_SIZE', 'DEFAULT_ROOT', 'SPLITS', 'DatasetError',
           'make_dataset', 'object_map', 'verify_dataset']
