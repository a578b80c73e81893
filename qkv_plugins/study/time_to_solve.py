"""The time-to-solve table: when each run first reached the solve threshold
on validation (Kaplan–Meier, median with its interval, log-rank test
against the reference), per-seed learning curves and each cosine model's
learnt scale over time."""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..io import cell
from ..report import csv_text, markdown_table
from ..stats.exact import clopper_pearson
from ..stats.paired import holm
from ..stats.survival import Step, kaplan_meier, logrank_p, median_time
from .collect import Variant
from .compare import p_cell
from .design import REFERENCE, SOLVE_THRESHOLD
from .names import row_id
from .render import machine_lines, row_key, _invocation_lines


@dataclass
class Times:
    """One variant's time to solve per seed."""
    variant: Variant
    times: Dict[int, int]  # seed -> iteration of the event or censoring
    events: Dict[int, bool]  # seed -> solved (else censored)

    @property
    def steps(self) -> List[Step]:
        seeds = sorted(self.times)
        return kaplan_meier([self.times[s] for s in seeds],
                            [self.events[s] for s in seeds])


def times_of(v: Variant) -> Times:
    """First validation at or above the threshold (event), else the last
    validation (censored), per seed."""
    times, events = {}, {}
    for seed in v.runs:
        history = v.val_history(seed)
        if not history:
            continue
        solved = [p['iter'] for p in history if p['mIoU'] >= SOLVE_THRESHOLD]
        events[seed] = bool(solved)
        times[seed] = solved[0] if solved else history[-1]['iter']
    return Times(v, times, events)


def cosine_scales(v: Variant, seed: int) -> List[Tuple[int, float]]:
    """(iteration, learnt cosine scale, mean over layers) of a seed."""
    out = []
    for point in v.val_history(seed):
        scales = point.get('cosine_scale')
        if isinstance(scales, dict) and scales:
            values = [s for s in scales.values()
                      if isinstance(s, (int, float))]
            if values:
                out.append((point['iter'], sum(values) / len(values)))
    return out


def _median_cell(times: Times) -> str:
    median, low, high = median_time(times.steps)

    def text(value):
        return 'not reached' if value is None else f'{value:g}'
    return f'{text(median)} [{text(low)}, {text(high)}]'


def analyse(variants: Sequence[Variant]) -> Tuple[List[Times], Dict[str, tuple]]:
    """Times per variant and {row: (log-rank p, Holm p)} against the
    reference."""
    found = [times_of(v) for v in sorted(variants, key=row_key) if v.runs]
    reference = next((t for t in found if t.variant.head == REFERENCE), None)
    raw = {}
    if reference is not None:
        for t in found:
            if t is reference:
                continue
            raw[row_id(t.variant.track, t.variant.head)] = logrank_p(
                *_arrays(t), *_arrays(reference))
    adjusted = dict(zip(raw, holm(list(raw.values()))))
    return found, {k: (raw[k], adjusted[k]) for k in raw}


def _arrays(t: Times):
    seeds = sorted(t.times)
    return [t.times[s] for s in seeds], [t.events[s] for s in seeds]


def _per_seed_cell(t: Times) -> str:
    return ' / '.join(f'{t.times[s]}' if t.events[s] else f'>{t.times[s]}'
                      for s in sorted(t.times))


def to_markdown(variants: List[Variant], problems: List[str],
                machine: str = '', invocations: Sequence[dict] = ()) -> str:
    found, tests = analyse(variants)
    rows = []
    for t in found:
        v, n = t.variant, len(t.times)
        k = sum(t.events.values())
        low, high = clopper_pearson(k, n)
        p = tests.get(row_id(v.track, v.head))
        rows.append([v.track, v.head, n, f'{k}/{n} [{low:.2f}, {high:.2f}]',
                     _per_seed_cell(t), _median_cell(t),
                     '-' if p is None else f'{p_cell(p[0])} ({p_cell(p[1])})'])
    text = markdown_table(('Track', 'Head', 'Seeds',
                           f'solved (val mIoU ≥ {SOLVE_THRESHOLD:g}) [95% CI]',
                           'iteration solved per seed (>: censored)',
                           'median [95% CI]',
                           f'log-rank p vs {REFERENCE} (Holm)'), rows)
    text += (f'\nTime to solve: the first validation (every 300 iterations) '
             f'with val mIoU ≥ {SOLVE_THRESHOLD:g}; a run stops there, or '
             'at 4,500 iterations unsolved (censored). One learning-rate '
             'trajectory for every run (150-iteration warm-up, then a '
             'constant 1e-3), so a run\'s length does not change its '
             'schedule. Median: Kaplan–Meier, with the pointwise 95 % '
             'interval (log transform, Greenwood) read where it crosses 0.5 '
             '("not reached": fewer than half solved). Log-rank: two-sided, '
             'against the reference, Holm over this table\'s tests '
             '(secondary family).\n')
    runs_on = machine_lines(variants)
    if machine:
        text += f'\nMachine: {machine}\n'
    if runs_on:
        text += '\nThe runs ran on:\n' + runs_on
    text += _invocation_lines(invocations)
    scales = [[row_id(t.variant.track, t.variant.head), seed,
               ' '.join(f'{it}:{s:.1f}' for it, s in cosine_scales(
                   t.variant, seed))]
              for t in found for seed in sorted(t.times)
              if cosine_scales(t.variant, seed)]
    if scales:
        text += '\nLearnt cosine scale (iteration:scale) per seed:\n\n' + \
            markdown_table(('Row', 'seed', 'scale over time'), scales)
    if problems:
        text += '\nRuns and files not in the table:\n' + ''.join(
            f'- {p}\n' for p in problems)
    return text


def to_csv(variants: List[Variant]) -> str:
    found, tests = analyse(variants)
    rows = []
    for t in found:
        v, n = t.variant, len(t.times)
        k = sum(t.events.values())
        low, high = clopper_pearson(k, n)
        median, m_low, m_high = median_time(t.steps)
        rid = row_id(v.track, v.head)
        p = tests.get(rid, (None, None))
        rows.append([
            rid, v.track, v.head, v.config, ' '.join(map(str,
                                                         sorted(t.times))),
            n, k, k / n if n else '', low, high,
            ' '.join(f'{s}:{t.times[s]}' for s in sorted(t.times)),
            ' '.join(f'{s}:{int(t.events[s])}' for s in sorted(t.times)),
            ' '.join(f'{st.time:g}:{st.survival:.4f}' for st in t.steps),
            median, m_low, m_high, p[0], p[1],
            ' '.join(f'{s}:' + ','.join(f'{pt["iter"]}={pt["mIoU"]:.2f}'
                                         for pt in v.val_history(s))
                     for s in sorted(t.times)),
            ' '.join(f'{s}:' + ','.join(f'{it}={sc:.3f}' for it, sc in
                                         cosine_scales(v, s))
                     for s in sorted(t.times) if cosine_scales(v, s)),
            ' '.join(f'{s}:{h}' for s, h in v.per_seed(
                'loss_sha256').items()),
            ' '.join(sorted({c for r in v.runs.values()
                             for c in r.get('commits') or []})),
            '; '.join(v.problems)])
    return csv_text((
        'row', 'track', 'head', 'config', 'seeds', 'n', 'solved',
        'solve_rate', 'solve_ci_low', 'solve_ci_high', 'time_per_seed',
        'event_per_seed', 'km_curve', 'km_median', 'km_median_low',
        'km_median_high', 'p_logrank', 'p_logrank_holm',
        'val_miou_per_seed', 'cosine_scale_per_seed', 'loss_sha256_per_seed',
        'commits', 'problems'), rows)


def plot(variants: List[Variant], path: str) -> None:
    """Kaplan–Meier curves, per-seed validation curves and learnt cosine
    scales, as a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from ..io import atomic_path
    found, _ = analyse(variants)
    fig, (km, curves, scales) = plt.subplots(1, 3, figsize=(18, 5.5))
    for i, t in enumerate(found):
        colour = plt.cm.tab10(i % 10)
        label = t.variant.head
        steps = t.steps
        xs, ys = [0], [1.0]
        for st in steps:
            xs += [st.time, st.time]
            ys += [ys[-1], st.survival]
        xs.append(max(t.times.values(), default=0))
        ys.append(ys[-1])
        km.plot(xs, [1 - y for y in ys], color=colour, label=label)
        for seed in sorted(t.times):
            history = t.variant.val_history(seed)
            curves.plot([p['iter'] for p in history],
                        [p['mIoU'] for p in history], color=colour,
                        alpha=0.6, linewidth=0.9,
                        label=label if seed == min(t.times) else None)
            scale = cosine_scales(t.variant, seed)
            if scale:
                scales.plot(*zip(*scale), color=colour, alpha=0.7,
                            label=label if seed == min(t.times) else None)
    km.set_title('share solved (Kaplan–Meier, 1 − S(t))')
    km.set_xlabel('iteration')
    km.set_ylim(0, 1.02)
    km.legend(fontsize=7)
    curves.axhline(SOLVE_THRESHOLD, color='r', linewidth=0.8, linestyle=':')
    curves.set_title('val mIoU per seed (runs stop when solved)')
    curves.set_xlabel('iteration')
    curves.set_ylim(0, 100)
    curves.legend(fontsize=7)
    scales.set_title('learnt cosine scale per seed')
    scales.set_xlabel('iteration')
    if scales.lines:
        scales.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=110)
    plt.close(fig)
