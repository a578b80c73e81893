"""What the study declares before its runs: the solve threshold, the
reference, the primary family, the factorial's contrasts, and the heads and
seeds of each scale. The table and the docs read it from here; changing it
after the runs changes what their tests mean (docs/qkv.md)."""
from ..layers.options import CONSTANT_QUERY_MODES, QKV_MODES

# A cyclic run is solved when its mIoU reaches this (test mIoU for solve
# rates, validation mIoU for the time to solve). Outcomes are bimodal:
# solved runs end near 99, stuck ones near 50.
SOLVE_THRESHOLD = 90.0
SOLVED_TRACKS = ('cyclic', )
# "Raw cosine similarity": no projection, cosine logits.
RAW_COSINE = 'nonlocal-identity-cosine'
# Every variant is compared with this one (same track and backbone).
REFERENCE = 'nonlocal-separate'
# The primary family, declared before the runs (docs/qkv.md): each of these
# against REFERENCE on the cyclic track, solve rates (McNemar's exact test,
# Holm over the four). Everything else is secondary.
PRIMARY = ('nonlocal-shared_qk', 'nonlocal-shared', RAW_COSINE,
           'nonlocal-query_independent')
DECISIVE = (REFERENCE, ) + PRIMARY
DEMO_HEADS = {
    'cyclic': ('fcn', REFERENCE, 'nonlocal-shared', RAW_COSINE,
               'nonlocal-query_independent'),
    'grouping': ('fcn', REFERENCE, RAW_COSINE),
}
DEMO_SEEDS = (0, 1, 2)
# seeds of the primary rows: with 12, seven discordant pairs give McNemar
# p = 0.016 (Holm over 4: 0.063), eleven give 0.001
PRIMARY_SEEDS = tuple(range(12))
# The factorial that separates the explanations (8 paired seeds each, on
# cyclic): which factor each contrast isolates is in CONTRASTS.
FACTORIAL = ('nonlocal-identity_qk', 'nonlocal-identity_qk-cosine',
             'nonlocal-shared_qk-cosine',
             'nonlocal-shared_qk-cosine-maskself',
             'nonlocal-identity-cosine-maskself', 'nonlocal-separate-cosine',
             'nonlocal-shared-r1', 'nonlocal-identity-cosine-s30')
FACTORIAL_SEEDS = tuple(range(8))
# --full: (heads per track, seeds); the demo's runs are a subset
FULL_GROUPS = (
    ({'cyclic': DECISIVE}, PRIMARY_SEEDS),
    ({'cyclic': FACTORIAL}, FACTORIAL_SEEDS),
    ({'cyclic': ('fcn', 'nonlocal-shared-cosine', 'dnl-separate',
                 'nonlocal-identity'),
      'grouping': ('fcn', ) + DECISIVE}, DEMO_SEEDS),
)
EXTENDED_HEADS = {
    track: tuple(f'ccnet-{m}' for m in QKV_MODES
                 if m not in CONSTANT_QUERY_MODES)
    for track in ('cyclic', 'grouping')
}
# (factor, variant, its control): the contrast isolates the factor.
CONTRASTS = (
    ('symmetry (Q = K)', 'nonlocal-shared_qk', REFERENCE),
    ('tying V to Q = K', 'nonlocal-shared', 'nonlocal-shared_qk'),
    ('projecting Q/K (Q = K either way)', 'nonlocal-identity_qk',
     'nonlocal-shared_qk'),
    ('projecting V (raw cosine Q = K)', RAW_COSINE,
     'nonlocal-identity_qk-cosine'),
    ('similarity: cosine for dot (separate)', 'nonlocal-separate-cosine',
     REFERENCE),
    ('similarity: cosine for dot (projected Q = K)',
     'nonlocal-shared_qk-cosine', 'nonlocal-shared_qk'),
    ('similarity: cosine for dot (unprojected Q = K)',
     'nonlocal-identity_qk-cosine', 'nonlocal-identity_qk'),
    ('parameter count (shared widened to separate\'s)', 'nonlocal-shared-r1',
     'nonlocal-shared'),
    ('temperature (cosine scale starts at 30, not 10)',
     'nonlocal-identity-cosine-s30', RAW_COSINE),
    ('own key masked (projected Q = K, cosine)',
     'nonlocal-shared_qk-cosine-maskself', 'nonlocal-shared_qk-cosine'),
    ('own key masked (raw cosine)', 'nonlocal-identity-cosine-maskself',
     RAW_COSINE),
)
# --time-to-solve: these heads, 8 paired seeds, from <configs>/time_to_solve
TIME_TO_SOLVE_HEADS = {'cyclic': DECISIVE + ('nonlocal-identity_qk', )}
TIME_TO_SOLVE_SEEDS = tuple(range(8))
TIME_TO_SOLVE_DIR = 'time_to_solve'
# --transformers: the narrow MiT whose own attention takes the switch
TRANSFORMER_HEADS = {'cyclic': tuple(f'mha-{v}' for v in (
    'separate', 'shared_qk', 'shared', 'identity_qk', 'identity',
    'identity-cosine', 'shared_qk-cosine'))}
# --transformer-pilot: can the narrow MiT's stock attention solve cyclic at
# all? Two seeds at three times the schedule (at most 30 min on 2 cores).
# Only if both solve does a transformer row join the answer (issue 18, 6).
TRANSFORMER_PILOT_HEADS = {'cyclic': ('mha-separate', )}
TRANSFORMER_PILOT_SEEDS = (0, 1)
TRANSFORMER_PILOT_ITERS = 4500
