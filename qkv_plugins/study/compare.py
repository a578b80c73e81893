"""The study's comparisons, as declared in :mod:`.design`.

Each row (a variant, an intervention on the reference's logits) is compared
with its reference over the seeds both have (paired: a seed fixes the data
order and the initialisation of the shared parts): the mean difference of
test mIoU with a 95 % t interval (description), the exact sign-flip p of
that difference, and — on a track with a solve threshold — solve rates with
exact intervals, McNemar's exact test on the paired solved/unsolved outcomes
and Fisher's exact test as an unpaired check. Holm's adjustment runs within
the primary family (McNemar of the declared primary rows) and, separately,
within the secondary family (every other test). Below
``MIN_PAIRS_FOR_TEST`` pairs no exact test can reach p < 0.05: such a row
gets no p, only the smallest effect it could have detected.
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from ..stats.exact import (MIN_PAIRS_FOR_TEST, McNemar, clopper_pearson,
                           detectable_effect, fisher_exact, mcnemar_exact,
                           sign_flip_p)
from ..stats.paired import PairedDifference, holm, paired_difference
from .collect import Variant
from .design import (CONTRASTS, PRIMARY, REFERENCE, SOLVE_THRESHOLD,
                     SOLVED_TRACKS)
from .names import BASELINE, row_id

CONFIDENCE = 0.95
# every variant is compared with `separate` of the first of these layers
# that has it on the same track and backbone
REFERENCE_LAYERS = ('nonlocal', 'mha')
INTERVENTIONS = ('symmetric', 'transpose')


@dataclass
class Outcome:
    """One row's values per seed: test mIoU and, where the track has a
    solve threshold, whether each seed solved it."""
    row: str
    track: str
    values: Dict[int, float]
    solved: Dict[int, bool] = field(default_factory=dict)

    @property
    def solve_rate(self):
        """(solved, n, low, high) with an exact 95 % interval, or None."""
        if not self.solved:
            return None
        k, n = sum(self.solved.values()), len(self.solved)
        return (k, n, *clopper_pearson(k, n, CONFIDENCE))


def solved_per_seed(track: str, values: Dict[int, float]) -> Dict[int, bool]:
    """{seed: mIoU ≥ threshold} on a track with a solve threshold, else {}."""
    if track not in SOLVED_TRACKS:
        return {}
    return {s: v >= SOLVE_THRESHOLD for s, v in values.items()}


def outcome(v: Variant) -> Outcome:
    return Outcome(row_id(v.track, v.head), v.track, v.by_seed,
                   solved_per_seed(v.track, v.by_seed))


@dataclass
class Comparison:
    """A row against its reference over the seeds both have."""
    row: str
    reference: str
    pairs: List[int]
    delta: Optional[PairedDifference]
    p_signflip: Optional[float]
    mcnemar: Optional[McNemar]
    p_fisher: Optional[float]
    detectable: Optional[float]
    primary: bool = False
    p_signflip_holm: Optional[float] = None
    p_mcnemar_holm: Optional[float] = None
    factor: str = ''

    @property
    def testable(self) -> bool:
        """Enough pairs for an exact test to reach p < 0.05."""
        return len(self.pairs) >= MIN_PAIRS_FOR_TEST


def compare(a: Outcome, b: Outcome, primary: bool = False,
            factor: str = '') -> Optional[Comparison]:
    """``a`` against ``b`` over their common seeds (None without one)."""
    pairs = sorted(set(a.values) & set(b.values))
    if not pairs:
        return None
    diffs = [a.values[s] - b.values[s] for s in pairs]
    testable = len(pairs) >= MIN_PAIRS_FOR_TEST
    mcnemar = p_fisher = None
    if a.solved and b.solved:
        mcnemar = mcnemar_exact({s: a.solved[s] for s in pairs},
                                {s: b.solved[s] for s in pairs})
        k_a, n_a = sum(a.solved.values()), len(a.solved)
        k_b, n_b = sum(b.solved.values()), len(b.solved)
        p_fisher = fisher_exact(k_a, n_a, k_b, n_b)
    return Comparison(
        row=a.row, reference=b.row, pairs=pairs,
        delta=paired_difference(dict(zip(pairs, diffs)),
                                dict.fromkeys(pairs, 0.0), CONFIDENCE),
        p_signflip=sign_flip_p(diffs) if testable else None,
        mcnemar=mcnemar, p_fisher=p_fisher,
        detectable=(detectable_effect(diffs) if len(pairs) < 8 else None),
        primary=primary, factor=factor)


def reference_of(v: Variant, variants: Sequence[Variant]
                 ) -> Optional[Variant]:
    """``separate`` of a reference layer on the variant's track and
    backbone (none for itself and for runs at another schedule); the FCN
    baseline is compared with the ResNet family's."""
    if v.long or (v.algo in REFERENCE_LAYERS and v.variant == 'separate'):
        return None
    for layer in REFERENCE_LAYERS:
        for r in variants:
            if (r.track == v.track and r.algo == layer
                    and r.variant == 'separate' and not r.long
                    and (r.backbone == v.backbone or v.algo == BASELINE)):
                return r
    return None


def _is_primary(v: Variant, reference: Variant) -> bool:
    return (v.track in SOLVED_TRACKS and v.head in PRIMARY
            and reference.head == REFERENCE)


@dataclass
class Results:
    """Every comparison of a table, with Holm's adjustment applied."""
    rows: Dict[str, Comparison]  # row id -> against its reference
    interventions: Dict[str, Comparison]  # row id -> against as trained
    contrasts: List[Comparison]
    outcomes: Dict[str, Outcome]

    def all(self) -> List[Comparison]:
        return [*self.rows.values(), *self.interventions.values(),
                *self.contrasts]


def intervention_outcome(v: Variant, how: str) -> Outcome:
    values = v.intervention(how)
    return Outcome(row_id(v.track, v.head, how), v.track, values,
                   solved_per_seed(v.track, values))


def _adjust(comparisons: List[Comparison]) -> None:
    """Holm within the primary family (McNemar of the primary rows) and
    within the secondary family (every other test of a testable pair)."""
    primary = [c for c in comparisons if c.primary and c.mcnemar
               and c.testable]
    for c, p in zip(primary, holm([c.mcnemar.p for c in primary])):
        c.p_mcnemar_holm = p
    secondary = [(c, 'p_signflip_holm', c.p_signflip) for c in comparisons
                 if c.testable and c.p_signflip is not None]
    secondary += [(c, 'p_mcnemar_holm', c.mcnemar.p) for c in comparisons
                  if c.testable and c.mcnemar and not c.primary]
    for (c, attr, _), p in zip(secondary, holm([p for *_, p in secondary])):
        setattr(c, attr, p)


def analyse(variants: Sequence[Variant]) -> Results:
    """Every row against its reference, the interventions against the
    reference as trained, and the declared contrasts; Holm applied."""
    outcomes = {row_id(v.track, v.head): outcome(v) for v in variants
                if v.runs}
    rows, interventions, contrasts = {}, {}, []
    for v in variants:
        reference = reference_of(v, variants)
        mine = outcomes.get(row_id(v.track, v.head))
        if reference is None or mine is None or not reference.runs:
            continue
        found = compare(mine, outcome(reference),
                        primary=_is_primary(v, reference))
        if found:
            rows[mine.row] = found
    for v in variants:
        if v.algo in REFERENCE_LAYERS and v.variant == 'separate':
            for how in INTERVENTIONS:
                changed = intervention_outcome(v, how)
                if changed.values:
                    outcomes[changed.row] = changed
                    found = compare(changed, outcomes[row_id(v.track,
                                                             v.head)])
                    if found:
                        interventions[changed.row] = found
    for factor, a, b in CONTRASTS:
        for track in SOLVED_TRACKS:
            first, second = (outcomes.get(row_id(track, h)) for h in (a, b))
            if first and second:
                found = compare(first, second, factor=factor)
                if found:
                    contrasts.append(found)
    results = Results(rows, interventions, contrasts, outcomes)
    _adjust(results.all())
    return results


def p_cell(p: Optional[float], testable: bool = True) -> str:
    """A p-value as the tables print it."""
    if not testable:
        return 'no test possible'
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return '-'
    return '< 0.001' if p < 0.001 else f'{p:.3f}'
