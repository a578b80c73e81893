"""Collect a study's runs from its work root.

Layout read: ``<root>/<run>/seed<k>/run_stats.json`` (written by
``RunStatsHook``: validation history, cost, commits), ``loss_series.json``
(the loss of every iteration and its SHA-256), ``test_metrics.json`` (the
test-split evaluation; the table's mIoU), ``test_metrics_<transform>.json``
(the same with the logits made symmetric or transposed),
``attention_diagnostics.json`` and, for ``mask_self`` models,
``attention_diagnostics_lifted.json``, ``attention_diagnostics_init.json``
(the model as its seed initialises it), and ``<root>/sweep.json`` (the plan
written by the sweep), which names every expected run so that none is
silently dropped. ``<run>`` is a config stem (see :mod:`.names`).

Anything odd is reported, never fatal: unreadable files, a NaN mIoU, a
folder that is not ``seed<k>`` (``seed03`` is not ``seed3``), values of the
wrong type.
"""
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..layers.catalog import UnknownLayer
from ..workdir import (DIAGNOSTICS_FILE, INIT_DIAGNOSTICS_FILE,
                       INTERVENTION_FILES, LIFTED_DIAGNOSTICS_FILE,
                       LOSS_SERIES_FILE, PLAN_FILE, STATS_FILE,
                       TEST_METRICS_FILE, RunFileError, read_json)
from .names import backbone_of, describe_config, head_name, is_time_to_solve

# Statistics of a position's own key: taken with the mask lifted where a
# model masks it.
OWN_KEY_STATS = ('self_top1', 'self_top1_obj', 'self_top1_bg',
                 'scaled_self_affinity', 'scaled_self_affinity_obj',
                 'scaled_self_affinity_bg', 'self_affinity')
# seed<k> with k written as Python writes an int (seed03 is not seed3)
_SEED_DIR = re.compile(r'^seed(0|[1-9][0-9]*)$')


def number(value) -> Optional[float]:
    """``value`` as a finite float, else None (NaN, strings, bools)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class Variant:
    """All seeds of one config."""
    config: str
    track: str
    algo: str
    variant: str
    runs: Dict[int, dict] = field(default_factory=dict)  # seed -> stats
    problems: List[str] = field(default_factory=list)

    @property
    def head(self) -> str:
        return head_name(self.algo, self.variant)

    @property
    def backbone(self) -> str:
        return backbone_of(self.config)

    @property
    def long(self) -> bool:
        """A run at another schedule than its config's."""
        return '@' in self.variant

    @property
    def by_seed(self) -> Dict[int, float]:
        """Test mIoU per seed."""
        return {s: self.runs[s]['test']['mIoU'] for s in sorted(self.runs)}

    @property
    def mious(self) -> List[float]:
        return list(self.by_seed.values())

    @property
    def masks_self(self) -> bool:
        """A ``mask_self`` model: its runs were also measured with the mask
        lifted (the evaluation does that for such models only)."""
        return any('diagnostics_lifted' in r for r in self.runs.values())

    def intervention(self, how: str) -> Dict[int, float]:
        """Test mIoU per seed with the logits transformed (``how``)."""
        return {s: r['interventions'][how] for s, r in sorted(self.runs.items())
                if how in r.get('interventions', {})}

    def mean_std(self) -> Tuple[Optional[float], Optional[float]]:
        values = self.mious
        if not values:
            return None, None
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        return statistics.fmean(values), std

    def first(self, key: str):
        for seed in sorted(self.runs):
            value = self.runs[seed].get(key)
            if value is not None:
                return value
        return None

    def per_seed(self, key: str) -> Dict[int, object]:
        """A run-level value (e.g. ``loss_sha256``) per seed, where present."""
        return {s: r[key] for s, r in sorted(self.runs.items())
                if r.get(key) is not None}

    def diagnostic_per_seed(self, stat: str,
                            source: Optional[str] = None) -> Dict[int, float]:
        """One attention statistic per seed (mean over layers / hops); a
        masked model's own-key statistics with the mask lifted. ``source``:
        ``'diagnostics_init'`` for the model at initialisation."""
        if source is None:
            source = ('diagnostics_lifted' if self.masks_self
                      and stat in OWN_KEY_STATS else 'diagnostics')
        out = {}
        for seed in sorted(self.runs):
            values = [number(v.get(stat)) for v in
                      (self.runs[seed].get(source) or {}).values()
                      if isinstance(v, dict)]
            values = [v for v in values if v is not None]
            if values:
                out[seed] = statistics.fmean(values)
        return out

    def diagnostic(self, stat: str,
                   source: Optional[str] = None) -> Optional[float]:
        """Mean over seeds of :meth:`diagnostic_per_seed`."""
        values = list(self.diagnostic_per_seed(stat, source).values())
        return statistics.fmean(values) if values else None

    def val_history(self, seed: int) -> List[dict]:
        """A seed's validations with a numeric mIoU, by iteration."""
        return sorted((p for p in self.runs[seed].get('val_history') or []
                       if isinstance(p, dict) and isinstance(p.get('iter'), int)
                       and number(p.get('mIoU')) is not None),
                      key=lambda p: p['iter'])

    def val_curve(self) -> List[Tuple[int, float]]:
        """(iteration, mean val mIoU over seeds) of the validations that
        every seed has."""
        per_iter: Dict[int, List[float]] = {}
        for seed in self.runs:
            for point in self.val_history(seed):
                per_iter.setdefault(point['iter'], []).append(point['mIoU'])
        return [(it, statistics.fmean(v)) for it, v in sorted(
            per_iter.items()) if len(v) == len(self.runs)]

    def median_of(self, key: str) -> Optional[float]:
        values = [number(r.get(key)) for r in self.runs.values()]
        values = [v for v in values if v]
        return statistics.median(values) if values else None


def _read_optional(path: Path, what: str, problems: List[str]):
    """A JSON object, None if the file is absent; a problem if unreadable."""
    if not path.is_file():
        return None
    try:
        return read_json(path, what)
    except RunFileError as error:
        problems.append(f'{what} left out: {error}')
        return None


def _test_miou(path: Path) -> Tuple[Optional[float], str]:
    """(test mIoU, problem) of a test-metrics file."""
    try:
        metrics = read_json(path, 'test metrics').get('metrics')
    except RunFileError as error:
        return None, f'corrupt ({error})'
    value = number(metrics.get('mIoU')) if isinstance(metrics, dict) else None
    if value is None:
        found = metrics.get('mIoU') if isinstance(metrics, dict) else metrics
        return None, f'corrupt ({path}: no finite mIoU, found {found!r})'
    return value, ''


def _status(stats_path: Path,
            embedded: bool) -> Tuple[str, Optional[dict], List[str]]:
    """(status, stats, problems of the run's other files)."""
    if not stats_path.is_file():
        return 'missing', None, []
    try:
        stats = read_json(stats_path, 'run statistics')
    except RunFileError as error:
        return f'corrupt ({error})', None, []
    folder, problems = stats_path.parent, []
    for key, name in (('diagnostics', DIAGNOSTICS_FILE),
                      ('diagnostics_lifted', LIFTED_DIAGNOSTICS_FILE),
                      ('diagnostics_init', INIT_DIAGNOSTICS_FILE)):
        found = _read_optional(folder / name, 'diagnostics', problems)
        if found is not None:
            stats[key] = found
    series = _read_optional(folder / LOSS_SERIES_FILE, 'loss series',
                            problems)
    if series is not None and isinstance(series.get('sha256'), str):
        stats['loss_sha256'] = series['sha256']
        stats['loss_iters'] = series.get('iters')
    interventions = {}
    for how, name in INTERVENTION_FILES.items():
        if (folder / name).is_file():
            value, problem = _test_miou(folder / name)
            if problem:
                problems.append(f'{how} evaluation left out: {problem}')
            else:
                interventions[how] = value
    stats['interventions'] = interventions
    if not stats.get('complete'):
        return (f'partial (iter {stats.get("iter")}/{stats.get("max_iters")})',
                stats, problems)
    if is_time_to_solve(folder.parent.name):  # read from its validations
        return 'complete', stats, problems
    test_path = folder / TEST_METRICS_FILE
    if not test_path.is_file():
        if embedded:
            return 'not evaluated on the test split', None, problems
        # a run outside the embedded study (e.g. Cityscapes on GPU nodes):
        # its last validation, marked as such
        metrics = stats.get('metrics')
        value = number(metrics.get('mIoU')) if isinstance(metrics,
                                                          dict) else None
        if value is None:
            return (f'corrupt ({stats_path}: complete but no finite mIoU)',
                    None, problems)
        stats['test'], stats['split'] = dict(metrics, mIoU=value), 'val'
        return 'complete', stats, problems
    value, problem = _test_miou(test_path)
    if problem:
        return problem, None, problems
    stats['test'] = dict(mIoU=value)
    return 'complete', stats, problems


def _planned_runs(plan: dict) -> Dict[Tuple[str, int], dict]:
    """{(config, seed): entry} of a sweep plan's well-formed entries."""
    runs = plan.get('runs')
    return {(r['config'], r['seed']): r
            for r in (runs if isinstance(runs, list) else [])
            if isinstance(r, dict) and isinstance(r.get('config'), str)
            and isinstance(r.get('seed'), int)
            and not isinstance(r.get('seed'), bool)}


def collect(root: str) -> Tuple[List[Variant], List[str]]:
    """Variants found under ``root`` plus a list of runs that are missing,
    failed, partial or corrupt (as 'config seed N: status'), and of files
    and folders left out (with their path and reason). The runs' own files
    say whether a run is complete; the plan only adds runs it expected."""
    root_path = Path(root)
    plan, problems = {}, []
    plan_path = root_path / PLAN_FILE
    if plan_path.is_file():
        try:
            plan = read_json(plan_path, 'sweep plan')
        except RunFileError as error:
            problems.append(f'{error}; the plan is ignored')
    expected = _planned_runs(plan)
    for stats_path in sorted(root_path.glob(f'*/*/{STATS_FILE}')):
        match = _SEED_DIR.match(stats_path.parent.name)
        if match is None:
            problems.append(f'ignored {stats_path.parent}: not a seed<k> '
                            'folder (k without leading zeros)')
            continue
        expected.setdefault((stats_path.parent.parent.name,
                             int(match.group(1))), {})
    variants: Dict[str, Variant] = {}
    for (config, seed), planned in sorted(expected.items()):
        try:
            track, algo, variant = describe_config(config)
        except UnknownLayer as error:
            problems.append(f'ignored {config} seed {seed}: {error}')
            continue
        entry = variants.setdefault(config, Variant(config, track, algo,
                                                     variant))
        status, stats, run_problems = _status(
            root_path / config / f'seed{seed}' / STATS_FILE, track != '-')
        problems.extend(f'{config} seed {seed}: {p}' for p in run_problems)
        if status != 'complete' and planned.get('status') in ('failed',
                                                              'conflict'):
            status += (f'; the sweep recorded {planned["status"]} '
                       f'{planned.get("reason") or ""}'
                       f'(exit {planned.get("returncode")})')
        if status == 'complete':
            entry.runs[seed] = stats
        else:
            problems.append(f'{config} seed {seed}: {status}')
            entry.problems.append(f'seed {seed}: {status}')
    return list(variants.values()), problems
