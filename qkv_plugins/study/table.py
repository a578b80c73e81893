"""Turn study work dirs into the benchmark table (Markdown, CSV, plot).

Layout read: ``<root>/<run>/seed<k>/run_stats.json`` (written by
``RunStatsHook``: validation history, cost), ``test_metrics.json`` (the
test-split evaluation; the table's mIoU), ``attention_diagnostics.json`` and,
for ``mask_self`` models, ``attention_diagnostics_lifted.json``, and
``<root>/sweep.json`` (the plan written by the sweep), which names every
expected run so that none is silently dropped. ``<run>`` is a config stem,
with ``-<N>it`` for a run at another schedule.

Each variant is compared with non-local ``separate`` on its track over the
seeds both have (paired: same data order and initialisation of the shared
parts), with a 95 % t interval and Holm-adjusted p over the table's
comparisons.
"""
import csv
import io
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..io import cell
from ..layers.catalog import UnknownLayer, entry_named, names
from ..layers.options import QKV_MODES
from ..stats.paired import PairedDifference, holm, paired_difference
from ..workdir import (DIAGNOSTICS_FILE, LIFTED_DIAGNOSTICS_FILE, PLAN_FILE,
                       STATS_FILE, TEST_METRICS_FILE, RunFileError, read_json)

# diagnostics shown in the table: (statistic, column title, format); those
# of a position's own key come from the lifted mask where a model masks it
DIAGNOSTIC_COLUMNS = (
    ('logit_asymmetry', 'logit asym.', '.2f'),
    ('self_top1_obj', 'self top-1 (obj)', '.2f'),
    ('self_top1_bg', 'self top-1 (bg)', '.2f'),
    ('scaled_self_affinity_obj', 'self-wt ×keys (obj)', '.1f'),
    ('entropy', 'entropy', '.2f'),
    ('query_independence', 'q-indep.', '.2f'),
    ('source_mass', 'mass on source', '.3f'),
)
# in the CSV only
EXTRA_DIAGNOSTICS = ('self_top1', 'scaled_self_affinity',
                     'scaled_self_affinity_bg', 'asymmetry',
                     'self_top1_chance', 'source_mass_chance_image',
                     'source_mass_chance_objects')
OWN_KEY_STATS = ('self_top1', 'self_top1_obj', 'self_top1_bg',
                 'scaled_self_affinity', 'scaled_self_affinity_obj',
                 'scaled_self_affinity_bg', 'self_affinity')
# every variant is compared with `separate` of the first of these layers
# that has it on the same track and backbone
REFERENCE_LAYERS = ('nonlocal', 'mha')
CONFIDENCE = 0.95
# {algorithm}-{variant}_{backbone}_{gpus}xb{batch}-..._qkvsyn-{track}-{crop}
# (the backbone token, e.g. tinyr18s2 or r18-d8, ends the variant, which may
# hold '_')
_EMBEDDED = re.compile(
    r'^(?P<algo>[a-z]+)(?:-(?P<variant>.+?))?_(?P<backbone>[a-z0-9]+)'
    r'(?:-d\d+)?_\d+xb\d+'
    r'.*_qkvsyn-'
    r'(?P<track>[a-z]+)-\d+x\d+(?:-(?P<iters>\d+)it)?$')
# The study's no-attention head; every other algorithm is a catalog name.
BASELINE = 'fcn'
# row order within a track: the baseline, then the catalog's layers and modes
MODE_ORDER = tuple(QKV_MODES)


def algo_order() -> Tuple[str, ...]:
    return (BASELINE, ) + tuple(names())


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
    def by_seed(self) -> Dict[int, float]:
        """Test mIoU per seed."""
        return {s: self.runs[s]['test']['mIoU'] for s in sorted(self.runs)}

    @property
    def mious(self) -> List[float]:
        """Test mIoU per seed (seeds in order)."""
        return list(self.by_seed.values())

    @property
    def masks_self(self) -> bool:
        """A ``mask_self`` model: its runs were also measured with the mask
        lifted (the evaluation does that for such models only)."""
        return any('diagnostics_lifted' in r for r in self.runs.values())

    @property
    def backbone(self) -> str:
        match = _EMBEDDED.match(self.config)
        return match['backbone'] if match else ''

    @property
    def long(self) -> bool:
        """A run at another schedule than its config's."""
        return '@' in self.variant

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

    def diagnostic_per_seed(self, stat: str) -> Dict[int, float]:
        """One attention statistic per seed (mean over layers / hops); a
        masked model's own-key statistics with the mask lifted."""
        source = ('diagnostics_lifted' if self.masks_self
                  and stat in OWN_KEY_STATS else 'diagnostics')
        out = {}
        for seed in sorted(self.runs):
            values = [v[stat] for v in
                      (self.runs[seed].get(source) or {}).values()
                      if isinstance(v, dict) and stat in v]
            if values:
                out[seed] = statistics.fmean(values)
        return out

    def diagnostic(self, stat: str) -> Optional[float]:
        """Mean over seeds of :meth:`diagnostic_per_seed`."""
        values = list(self.diagnostic_per_seed(stat).values())
        return statistics.fmean(values) if values else None

    def val_curve(self) -> List[Tuple[int, float]]:
        """(iteration, mean val mIoU over seeds) of the validations that
        every seed has."""
        per_iter: Dict[int, List[float]] = {}
        for stats in self.runs.values():
            for point in stats.get('val_history') or []:
                if isinstance(point.get('mIoU'), (int, float)):
                    per_iter.setdefault(point['iter'], []).append(
                        point['mIoU'])
        return [(it, statistics.fmean(v)) for it, v in sorted(
            per_iter.items()) if len(v) == len(self.runs)]

    def median_of(self, key: str) -> Optional[float]:
        values = [r[key] for r in self.runs.values() if r.get(key)]
        return statistics.median(values) if values else None


def describe_config(stem: str) -> Tuple[str, str, str]:
    """(track, algorithm, variant) from an embedded-study config name (other
    names: the stem as the algorithm). An algorithm that is neither the
    baseline nor a catalog name raises UnknownLayer naming the known ones."""
    match = _EMBEDDED.match(stem)
    if match is None:
        return '-', stem, '-'
    if match['algo'] != BASELINE:
        entry_named(match['algo'])
    variant = match['variant'] or '-'
    if match['iters']:  # a run at another schedule
        variant += f' @{match["iters"]}it'
    return (match['track'], match['algo'], variant)


_SEED_DIR = re.compile(r'^seed(\d+)$')


def _status(stats_path: Path) -> Tuple[str, Optional[dict], List[str]]:
    """(status, stats, problems of the run's other files)."""
    if not stats_path.is_file():
        return 'missing', None, []
    try:
        stats = read_json(stats_path, 'run statistics')
    except RunFileError as error:
        return f'corrupt ({error})', None, []
    problems = []
    for key, name in (('diagnostics', DIAGNOSTICS_FILE),
                      ('diagnostics_lifted', LIFTED_DIAGNOSTICS_FILE)):
        path = stats_path.parent / name
        if path.is_file():
            try:
                stats[key] = read_json(path, 'diagnostics')
            except RunFileError as error:
                problems.append(f'diagnostics left out: {error}')
    if not stats.get('complete'):
        return (f'partial (iter {stats.get("iter")}/{stats.get("max_iters")})',
                stats, problems)
    metrics = stats.get('metrics')
    if not isinstance(metrics, dict) or not isinstance(metrics.get('mIoU'),
                                                       (int, float)):
        metrics = None
    test_path = stats_path.parent / TEST_METRICS_FILE
    if not test_path.is_file():
        if describe_config(stats_path.parent.parent.name)[0] != '-':
            return 'not evaluated on the test split', None, problems
        # a run outside the embedded study (e.g. Cityscapes on GPU nodes):
        # its last validation, marked as such
        if metrics is None:
            return f'corrupt ({stats_path}: complete but no mIoU)', None, \
                problems
        stats['test'], stats['split'] = metrics, 'val'
        return 'complete', stats, problems
    try:
        test = read_json(test_path, 'test metrics').get('metrics')
    except (RunFileError, AttributeError) as error:
        return f'corrupt ({error})', None, problems
    if not isinstance(test, dict) or not isinstance(test.get('mIoU'),
                                                    (int, float)):
        return f'corrupt ({test_path}: no mIoU)', None, problems
    stats['test'] = test
    return 'complete', stats, problems


def _planned_runs(plan: dict) -> Dict[Tuple[str, int], dict]:
    """{(config, seed): entry} of a sweep plan's well-formed entries."""
    runs = plan.get('runs')
    return {(r['config'], r['seed']): r
            for r in (runs if isinstance(runs, list) else [])
            if isinstance(r, dict) and isinstance(r.get('config'), str)
            and isinstance(r.get('seed'), int)}


def collect(root: str) -> Tuple[List[Variant], List[str]]:
    """Variants found under ``root`` plus a list of runs that are missing,
    failed, partial or corrupt (as 'config seed N: status'), and of files
    and folders left out (with their path and reason)."""
    root_path = Path(root)
    plan = {}
    problems = []
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
                            'folder')
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
        status, stats, run_problems = _status(root_path / config /
                                              f'seed{seed}' / STATS_FILE)
        problems.extend(f'{config} seed {seed}: {p}' for p in run_problems)
        if planned.get('status') == 'failed':
            status = f'failed (exit {planned.get("returncode")})'
        elif planned.get('status') == 'conflict':
            status = f'conflict ({planned.get("reason")})'
        if status == 'complete':
            entry.runs[seed] = stats
        else:
            problems.append(f'{config} seed {seed}: {status}')
            entry.problems.append(f'seed {seed}: {status}')
    return list(variants.values()), problems


COLUMNS = ('Track', 'Head', 'qkv_mode', 'test mIoU mean ± std', 'per seed',
           'Δ vs separate [95% CI]', 'p (Holm)', 'Params (M)', 'FLOPs (G)',
           'Step (ms)', 'Peak mem (MiB)', 'Seeds')


def _row_key(v: Variant):
    mode = v.variant.split('-')[0].split(' ')[0]
    return (v.track, _index(algo_order(), v.algo), v.algo,
            _index(MODE_ORDER, mode), v.long, v.variant)


def _index(order, value) -> int:
    return order.index(value) if value in order else len(order)


def _has_diagnostics(variants: List[Variant]) -> bool:
    return any(v.diagnostic('entropy') is not None for v in variants)


def _reference(v: Variant, variants: Sequence[Variant]) -> Optional[Variant]:
    """``separate`` of a reference layer on the variant's track and
    backbone (none for itself and for runs at another schedule); the FCN
    baseline is compared with the ResNet family's."""
    if v.long or (v.algo in REFERENCE_LAYERS and v.variant == 'separate'):
        return None
    for layer in REFERENCE_LAYERS:
        for r in variants:
            if (r.track == v.track and r.algo == layer
                    and r.variant == 'separate'
                    and (r.backbone == v.backbone
                         or v.algo == BASELINE)):
                return r
    return None


def comparisons(variants: Sequence[Variant]
                ) -> Dict[str, Tuple[PairedDifference, float]]:
    """{config: (paired difference to separate, Holm-adjusted p)} of every
    variant with at least two seeds in common with its reference; Holm over
    all of them."""
    found = {}
    for v in variants:
        reference = _reference(v, variants)
        if reference is None:
            continue
        if len(set(v.by_seed) & set(reference.by_seed)) >= 2:
            found[v.config] = paired_difference(v.by_seed, reference.by_seed,
                                                CONFIDENCE)
    adjusted = holm([d.p for d in found.values()])
    return {c: (d, p) for (c, d), p in zip(found.items(), adjusted)}


def _p_cell(p: float) -> str:
    if p != p:
        return '-'
    return '< 0.001' if p < 0.001 else f'{p:.3f}'


def _diagnostic_cell(v: Variant, stat: str, spec: str) -> str:
    text = cell(v.diagnostic(stat), spec)
    if text != '-' and v.masks_self and stat in OWN_KEY_STATS:
        text += '†'
    return text


def rows(variants: List[Variant]) -> List[List[str]]:
    """Table rows, grouped by track, FCN baseline first in each."""
    compared = comparisons(variants)
    out = []
    for v in sorted(variants, key=_row_key):
        mean, std = v.mean_std()
        n_seeds = len(v.runs) + len(v.problems)
        diff, p = compared.get(v.config, (None, math.nan))
        out.append([
            v.track, v.algo, v.variant,
            '-' if mean is None else f'{mean:.2f} ± {std:.2f}' + (
                ' (val)' if any(r.get('split') == 'val'
                                for r in v.runs.values()) else ''),
            ' / '.join(f'{m:.1f}' for m in v.mious) or '-',
            '-' if diff is None else
            f'{diff.mean:+.2f} [{diff.low:+.2f}, {diff.high:+.2f}]',
            _p_cell(p),
            cell(v.first('params') and v.first('params') / 1e6, '.3f'),
            cell(v.first('flops') and v.first('flops') / 1e9, '.3f'),
            cell(v.median_of('step_time_s') and
                 1000 * v.median_of('step_time_s'), '.1f'),
            cell(v.median_of('peak_memory_mib'), '.0f'),
            f'{len(v.runs)}/{n_seeds}',
        ] + ([_diagnostic_cell(v, stat, spec)
              for stat, _, spec in DIAGNOSTIC_COLUMNS] + [_chance_cell(v)]
             if _has_diagnostics(variants) else []))
    return out


def _chance_cell(v: Variant) -> str:
    image = v.diagnostic('source_mass_chance_image')
    objects = v.diagnostic('source_mass_chance_objects')
    if image is None or objects is None:
        return '-'
    return f'{image:.3f} / {objects:.3f}'


def _invocation_lines(invocations: Sequence[dict]) -> str:
    if not invocations:
        return ''
    lines = ['\nProduced by (wall time of each invocation; runs already '
             'complete are not trained again):\n']
    for item in invocations:
        lines.append(f'- `{item.get("command")}` at commit '
                     f'{item.get("commit")}, {item.get("started")}: '
                     f'{item.get("minutes")} min wall, '
                     f'{item.get("trained")} of {item.get("runs")} runs '
                     'trained\n')
    return ''.join(lines)


def to_markdown(variants: List[Variant], problems: List[str],
                machine: str = '', invocations: Sequence[dict] = ()) -> str:
    diagnostics = _has_diagnostics(variants)
    columns = COLUMNS + (tuple(title for _, title, _ in DIAGNOSTIC_COLUMNS) +
                         ('source chance (image / objects)', )
                         if diagnostics else ())
    table = [columns] + rows(variants)
    lines = ['| ' + ' | '.join(r) + ' |' for r in table]
    lines.insert(1, '|' + '---|' * len(columns))
    text = '\n'.join(lines) + '\n'
    if machine:
        text += f'\nMachine: {machine}\n'
    text += _invocation_lines(invocations)
    text += ('\nmIoU on the held-out test split (generated from a stream of '
             'its own, never used for design choices) at the last '
             'iteration (`(val)`: the last validation, for runs outside '
             'the embedded study); mean ± sample std over seeds. Δ vs '
             'separate: the '
             'paired difference to non-local `separate` on the same track '
             'over the seeds both have (a seed fixes the data order and the '
             'initialisation of the shared parts), with a 95 % t interval; '
             'p: two-sided paired t-test, Holm-adjusted over every '
             'comparison in this table. Params and FLOPs of the whole model '
             '(FLOPs include attention; 1 multiply-add = 1 FLOP) for one '
             'image. Step: median training step time; memory: peak CUDA '
             'allocation or, on CPU, peak resident set of the process. '
             '`@<N>it`: one run at N iterations (another schedule; not '
             'compared).\n')
    if diagnostics:
        text += ('\nAttention diagnostics (test split, final checkpoint, '
                 'mean over seeds and criss-cross hops): logit asym. = '
                 '‖C − Cᵀ‖/‖C‖ over off-diagonal entries of the '
                 'double-centred log-weights C (0 for a symmetric score '
                 'such as Q = K; - where the map is not square or is '
                 'query-independent; batches whose weights underflowed to '
                 'exactly 0 are left out, the log of 0 not being the '
                 'logit); self top-1 = share of query positions '
                 'whose top key is their own position, over labelled object '
                 '(obj) or unlabelled background (bg) positions (chance: 1 '
                 '/ keys, 1/256 here); self-wt ×keys = the weight a position '
                 'gives itself × the number of keys (1 = uniform); † = '
                 'measured with the self mask lifted (the masked model gives '
                 'itself 0 by construction); entropy = normalised entropy '
                 '(1 = uniform); q-indep. = mean cosine distance between '
                 "different queries' maps (GCNet; 0 = query-independent); "
                 'mass on source = attention mass that object pixels put on '
                 'the object their label comes from (cyclic track), with '
                 'what uniform attention over the image or over the three '
                 'cycle objects would put there.\n')
    if problems:
        text += ('\nRuns and files not in the table (missing, failed, '
                 'partial, not evaluated, corrupt or ignored):\n')
        text += ''.join(f'- {p}\n' for p in problems)
    return text


def _seeds_text(values: Dict[int, float], spec: str = '.4f') -> str:
    return ' '.join(f'{k}:{v:{spec}}' for k, v in sorted(values.items()))


def to_csv(variants: List[Variant]) -> str:
    """One row per variant: test mIoU per seed, the paired comparison with
    separate, cost, validation curve, and each diagnostic's mean and
    per-seed values (``seed:value``)."""
    compared = comparisons(variants)
    stats = tuple(s for s, _, _ in DIAGNOSTIC_COLUMNS) + EXTRA_DIAGNOSTICS
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        ['track', 'head', 'qkv_mode', 'config', 'test_miou_mean',
         'test_miou_std', 'test_miou_per_seed', 'seeds', 'delta_vs_separate',
         'delta_ci_low', 'delta_ci_high', 'paired_seeds', 'p', 'p_holm',
         'params', 'flops', 'step_time_s', 'peak_memory_mib',
         'val_miou_curve', 'own_key_stats_lifted', 'problems'] +
        [c for s in stats for c in (s, f'{s}_per_seed')])
    for v in sorted(variants, key=_row_key):
        mean, std = v.mean_std()
        diff, p_holm = compared.get(v.config, (None, math.nan))
        writer.writerow([
            v.track, v.algo, v.variant, v.config, mean, std,
            _seeds_text(v.by_seed, '.2f'), ' '.join(map(str, sorted(v.runs))),
            *((diff.mean, diff.low, diff.high, diff.seeds, diff.p, p_holm)
              if diff else ('', ) * 6),
            v.first('params'), v.first('flops'), v.median_of('step_time_s'),
            v.median_of('peak_memory_mib'),
            ' '.join(f'{it}:{m:.2f}' for it, m in v.val_curve()),
            v.masks_self, '; '.join(v.problems)
        ] + [x for s in stats for x in (v.diagnostic(s), _seeds_text(
            v.diagnostic_per_seed(s)))])
    return buffer.getvalue()


def plot(variants: List[Variant], path: str) -> None:
    """Per track: test mIoU per variant (mean ± std, seeds as dots) above,
    the validation learning curves (mean over seeds) below, as a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from ..io import atomic_path
    tracks = sorted({v.track for v in variants})
    widths = [max(6.0, 0.45 * sum(v.track == t for v in variants))
              for t in tracks]  # room for each bar's label
    fig, axes = plt.subplots(2, len(tracks), figsize=(sum(widths), 9),
                             squeeze=False,
                             gridspec_kw=dict(width_ratios=widths))
    for column, track in enumerate(tracks):
        bars, curves = axes[0][column], axes[1][column]
        chosen = sorted((v for v in variants if v.track == track and v.runs),
                        key=_row_key)
        for i, v in enumerate(chosen):
            mean, std = v.mean_std()
            colour = ('grey' if v.algo == BASELINE else
                      plt.cm.tab20(i % 20))
            bars.bar(i, mean, yerr=std, color=colour, alpha=0.6, capsize=3)
            bars.scatter([i] * len(v.mious), v.mious, color='k', s=8,
                         zorder=3)
            curve = v.val_curve()
            if curve:
                curves.plot(*zip(*curve), marker='o', color=colour,
                            linestyle='--' if v.long else
                            ':' if v.backbone != chosen[0].backbone
                            else '-',
                            label=_label(v).replace('\n', ' '))
        bars.set_xticks(range(len(chosen)))
        bars.set_xticklabels([_label(v) for v in chosen], rotation=60,
                             fontsize=7)
        bars.set_title(f'track: {track} (test split)')
        bars.set_ylabel('test mIoU')
        bars.set_ylim(0, 100)
        curves.set_title(f'track: {track}: learning curves (val split, '
                         'mean over seeds)')
        curves.set_xlabel('iteration')
        curves.set_ylabel('val mIoU')
        curves.set_ylim(0, 100)
        curves.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=110)
    plt.close(fig)


def _label(v: Variant) -> str:
    return v.algo if v.variant == '-' else f'{v.algo}\n{v.variant}'
