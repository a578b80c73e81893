"""Turn study work dirs into the benchmark table (Markdown, CSV, plot).

Layout read: ``<root>/<config stem>/seed<k>/run_stats.json`` (written by
``RunStatsHook``) and ``<root>/sweep.json`` (the plan written by the sweep),
which names every expected run so that none is silently dropped.
"""
import csv
import io
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..io import cell
from ..layers.catalog import UnknownLayer, entry_named, names
from ..layers.options import QKV_MODES
from ..workdir import (DIAGNOSTICS_FILE, PLAN_FILE, STATS_FILE, RunFileError,
                       read_json)

# diagnostics shown in the table: (statistic, column title, format)
DIAGNOSTIC_COLUMNS = (
    ('scaled_self_affinity', 'self-aff. ×keys', '.2f'),
    ('self_top1', 'self top-1', '.2f'),
    ('entropy', 'entropy', '.2f'),
    ('asymmetry', 'asym.', '.2f'),
    ('logit_asymmetry', 'logit asym.', '.2f'),
    ('query_independence', 'q-indep.', '.2f'),
    ('source_mass', 'mass on source', '.2f'),
)
# {algorithm}-{variant}_{backbone}_{gpus}xb{batch}-..._qkvsyn-{track}-{crop}
# (the backbone token, e.g. tinyr18s2 or r18-d8, ends the variant, which may
# hold '_')
_EMBEDDED = re.compile(
    r'^(?P<algo>[a-z]+)(?:-(?P<variant>.+?))?_[a-z0-9]+(?:-d\d+)?_\d+xb\d+'
    r'.*_qkvsyn-'
    r'(?P<track>[a-z]+)-\d+x\d+$')
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
    def mious(self) -> List[float]:
        return [self.runs[s]['metrics']['mIoU'] for s in sorted(self.runs)]

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

    def diagnostic(self, stat: str) -> Optional[float]:
        """Mean over seeds (and layers / hops) of one attention statistic."""
        values = [v[stat] for r in self.runs.values()
                  for v in (r.get('diagnostics') or {}).values() if stat in v]
        return statistics.fmean(values) if values else None

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
    return (match['track'], match['algo'], match['variant'] or '-')


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
    diagnostics = stats_path.parent / DIAGNOSTICS_FILE
    if diagnostics.is_file():
        try:
            stats['diagnostics'] = read_json(diagnostics, 'diagnostics')
        except RunFileError as error:
            problems.append(f'diagnostics left out: {error}')
    if not stats.get('complete'):
        return (f'partial (iter {stats.get("iter")}/{stats.get("max_iters")})',
                stats, problems)
    metrics = stats.get('metrics')
    if not isinstance(metrics, dict) or not isinstance(metrics.get('mIoU'),
                                                       (int, float)):
        return f'corrupt ({stats_path}: complete but no mIoU)', None, problems
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


COLUMNS = ('Track', 'Head', 'qkv_mode', 'mIoU mean ± std', 'per seed',
           'Δ vs FCN', 'Params (M)', 'FLOPs (G)', 'Step (ms)', 'Peak mem (MiB)',
           'Seeds')


def _row_key(v: Variant):
    mode = v.variant.split('-')[0]
    return (v.track, _index(algo_order(), v.algo), v.algo,
            _index(MODE_ORDER, mode), v.variant)


def _index(order, value) -> int:
    return order.index(value) if value in order else len(order)


def _has_diagnostics(variants: List[Variant]) -> bool:
    return any(v.diagnostic('entropy') is not None for v in variants)


def rows(variants: List[Variant]) -> List[List[str]]:
    """Table rows, grouped by track, FCN baseline first in each."""
    baseline = {v.track: v.mean_std()[0] for v in variants
                if v.algo == BASELINE}
    out = []
    for v in sorted(variants, key=_row_key):
        mean, std = v.mean_std()
        base = baseline.get(v.track)
        delta = (None if mean is None or base is None or v.algo == BASELINE
                 else mean - base)
        n_seeds = len(v.runs) + len(v.problems)
        out.append([
            v.track, v.algo, v.variant,
            '-' if mean is None else f'{mean:.2f} ± {std:.2f}',
            ' / '.join(f'{m:.1f}' for m in v.mious) or '-',
            '-' if delta is None else f'{delta:+.2f}',
            cell(v.first('params') and v.first('params') / 1e6, '.3f'),
            cell(v.first('flops') and v.first('flops') / 1e9, '.3f'),
            cell(v.median_of('step_time_s') and
                 1000 * v.median_of('step_time_s'), '.1f'),
            cell(v.median_of('peak_memory_mib'), '.0f'),
            f'{len(v.runs)}/{n_seeds}',
        ] + ([cell(v.diagnostic(stat), spec)
              for stat, _, spec in DIAGNOSTIC_COLUMNS]
             if _has_diagnostics(variants) else []))
    return out


def to_markdown(variants: List[Variant], problems: List[str],
                machine: str = '') -> str:
    columns = COLUMNS + (tuple(title for _, title, _ in DIAGNOSTIC_COLUMNS)
                         if _has_diagnostics(variants) else ())
    table = [columns] + rows(variants)
    lines = ['| ' + ' | '.join(r) + ' |' for r in table]
    lines.insert(1, '|' + '---|' * len(columns))
    text = '\n'.join(lines) + '\n'
    if machine:
        text += f'\nMachine: {machine}\n'
    text += ('\nmIoU on the val split at the last iteration; mean ± sample '
             'std over seeds. Params and FLOPs of the whole model (FLOPs '
             'include attention; 1 multiply-add = 1 FLOP) for one image. '
             'Step: median training step time; memory: peak CUDA allocation '
             'or, on CPU, peak resident set of the process.\n')
    if _has_diagnostics(variants):
        text += ('\nAttention diagnostics (val split, final checkpoint, mean '
                 'over seeds and criss-cross hops): self-aff. ×keys = weight '
                 'a position gives itself × number of keys it sees (1 = '
                 'uniform); self top-1 = share of positions whose top key is '
                 'themselves; entropy = normalised entropy (1 = uniform); '
                 'asym. = ‖A − Aᵀ‖/‖A‖; logit asym. = the same of the '
                 'double-centred log-weights (0 for symmetric scores); '
                 'q-indep. = mean cosine distance '
                 "between different queries' maps (GCNet); mass on source = "
                 'attention mass that object pixels put on the object their '
                 'label comes from (cyclic track).\n')
    if problems:
        text += ('\nRuns and files not in the table (missing, failed, '
                 'partial, corrupt or ignored):\n')
        text += ''.join(f'- {p}\n' for p in problems)
    return text


def to_csv(variants: List[Variant]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(['track', 'head', 'qkv_mode', 'config', 'miou_mean',
                     'miou_std', 'miou_per_seed', 'seeds', 'params', 'flops',
                     'step_time_s', 'peak_memory_mib', 'problems'] +
                    [stat for stat, _, _ in DIAGNOSTIC_COLUMNS])
    for v in variants:
        mean, std = v.mean_std()
        writer.writerow([
            v.track, v.algo, v.variant, v.config, mean, std,
            ' '.join(f'{m:.4f}' for m in v.mious),
            ' '.join(map(str, sorted(v.runs))), v.first('params'),
            v.first('flops'), v.median_of('step_time_s'),
            v.median_of('peak_memory_mib'), '; '.join(v.problems)
        ] + [v.diagnostic(stat) for stat, _, _ in DIAGNOSTIC_COLUMNS])
    return buffer.getvalue()


def plot(variants: List[Variant], path: str) -> None:
    """mIoU per mode and track (mean ± std, seeds as dots) as a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from ..io import atomic_path
    tracks = sorted({v.track for v in variants})
    fig, axes = plt.subplots(1, len(tracks), figsize=(6 * len(tracks), 4),
                             squeeze=False)
    for ax, track in zip(axes[0], tracks):
        chosen = sorted((v for v in variants if v.track == track and v.runs),
                        key=_row_key)
        for i, v in enumerate(chosen):
            mean, std = v.mean_std()
            colour = ('grey' if v.algo == BASELINE else
                      f'C{_index(algo_order(), v.algo) % 10}')
            ax.bar(i, mean, yerr=std, color=colour, alpha=0.6, capsize=3)
            ax.scatter([i] * len(v.mious), v.mious, color='k', s=8, zorder=3)
        ax.set_xticks(range(len(chosen)))
        ax.set_xticklabels([v.algo if v.variant == '-' else
                            f'{v.algo}\n{v.variant}' for v in chosen],
                           rotation=60, fontsize=7)
        ax.set_title(f'track: {track}')
        ax.set_ylabel('mIoU (val)')
        ax.set_ylim(0, 100)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=110)
    plt.close(fig)
