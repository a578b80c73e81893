"""The study table as Markdown, CSV and a picture."""
import statistics
from typing import Dict, List, Optional, Sequence

from ..io import cell
from ..report import csv_text, markdown_table
from .collect import OWN_KEY_STATS, Variant
from .compare import (INTERVENTIONS, Comparison, Outcome, Results, analyse,
                      p_cell)
from .design import PRIMARY, REFERENCE, SOLVE_THRESHOLD, SOLVED_TRACKS
from .names import BASELINE, MODE_ORDER, algo_order, row_id

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
DIAGNOSTICS = tuple(s for s, _, _ in DIAGNOSTIC_COLUMNS) + EXTRA_DIAGNOSTICS


def row_key(v: Variant):
    mode = v.variant.split('-')[0].split(' ')[0]
    return (v.track, _index(algo_order(), v.algo), v.algo,
            _index(MODE_ORDER, mode), v.long, v.variant)


def _index(order, value) -> int:
    return order.index(value) if value in order else len(order)


def _seeds_text(values: Dict[int, object], spec: str = '.4f') -> str:
    return ' '.join(f'{k}:{v:{spec}}' if isinstance(v, float) else f'{k}:{v}'
                    for k, v in sorted(values.items()))


def _rate_cell(o: Optional[Outcome]) -> str:
    rate = o.solve_rate if o else None
    if rate is None:
        return '-'
    k, n, low, high = rate
    return f'{k}/{n} [{low:.2f}, {high:.2f}]'


def _delta_cell(c: Optional[Comparison]) -> str:
    if c is None or c.delta is None:
        return '-'
    d = c.delta
    if d.low != d.low:  # one pair: no interval
        return f'{d.mean:+.2f}'
    return f'{d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}]'


def _with_holm(p, holm, testable: bool) -> str:
    if not testable:
        return 'no test possible'
    if p is None:
        return '-'
    return f'{p_cell(p)} ({p_cell(holm)})'


def _mcnemar_cell(c: Optional[Comparison]) -> str:
    if c is None or c.mcnemar is None:
        return '-'
    m = c.mcnemar
    return (f'{m.only_a}/{m.only_b}: '
            + _with_holm(m.p, c.p_mcnemar_holm, c.testable))


def _family(c: Optional[Comparison]) -> str:
    if c is None:
        return '-'
    return 'primary' if c.primary else 'secondary'


def machine_lines(variants: Sequence[Variant]) -> str:
    """What the runs ran on, from their own statistics."""
    seen = sorted({(str(r.get('device')), str(r.get('threads')),
                    str(r.get('cpu_capability')), str(r.get('torch')))
                   for v in variants for r in v.runs.values()})
    return ''.join(f'- {device}; {threads} intra-op thread(s) per run; CPU '
                   f'capability {capability}; torch {torch}\n'
                   for device, threads, capability, torch in seen)


def design_text(variants: Sequence[Variant]) -> str:
    tracks = sorted({v.track for v in variants} & set(SOLVED_TRACKS))
    if not tracks:
        return ''
    primary = ', '.join(f'`{h}`' for h in PRIMARY)
    return (
        f'\nDeclared before the runs (`qkv_plugins/study/design.py`, '
        f'docs/qkv.md): a run on {", ".join(tracks)} is **solved** when its '
        f'test mIoU is ≥ {SOLVE_THRESHOLD:g}. Primary family: {primary} '
        f'each against `{REFERENCE}` on cyclic, solve rates by McNemar\'s '
        'exact test on the seed-paired outcomes, Holm over these four. '
        'Everything else is secondary (exact sign-flip p of the paired mIoU '
        'difference for every row, McNemar for the other rows, the '
        'contrasts and the interventions), Holm over all secondary tests '
        'of this table. Below 6 pairs an exact test cannot reach p < 0.05: '
        '"no test possible"; rows with fewer than 8 seeds show the smallest '
        'paired difference they could have detected (80 % power at their '
        'own SD, two-sided 5 %).\n')


def main_rows(variants: Sequence[Variant], results: Results) -> List[list]:
    out = []
    for v in sorted(variants, key=row_key):
        mean, std = v.mean_std()
        rid = row_id(v.track, v.head)
        c = results.rows.get(rid)
        out.append([
            v.track, v.algo, v.variant, f'{len(v.runs)}/'
            f'{len(v.runs) + len(v.problems)}',
            '-' if mean is None else f'{mean:.2f} ± {std:.2f}' + (
                ' (val)' if any(r.get('split') == 'val'
                                for r in v.runs.values()) else ''),
            ' / '.join(f'{m:.1f}' for m in v.mious) or '-',
            _rate_cell(results.outcomes.get(rid)), _family(c),
            _delta_cell(c),
            '-' if c is None else _with_holm(c.p_signflip, c.p_signflip_holm,
                                             c.testable),
            _mcnemar_cell(c),
            '-' if c is None or c.p_fisher is None else p_cell(c.p_fisher),
            '-' if c is None else cell(c.detectable, '.1f'),
            cell(v.first('params') and v.first('params') / 1e6, '.3f'),
            cell(v.first('flops') and v.first('flops') / 1e9, '.3f'),
            cell(v.median_of('step_time_s') and
                 1000 * v.median_of('step_time_s'), '.1f'),
            cell(v.median_of('peak_memory_mib'), '.0f'),
        ])
    return out


MAIN_HEADER = ('Track', 'Head', 'qkv_mode', 'Seeds', 'test mIoU mean ± std',
               'per seed', 'solved [95% CI]', 'family',
               'Δ vs separate [95% CI]', 'p sign-flip (Holm)',
               'McNemar only row/only ref: p (Holm)', 'p Fisher',
               'detectable Δ', 'Params (M)', 'FLOPs (G)', 'Step (ms)',
               'Peak mem (MiB)')


def _diagnostic_cell(v: Variant, stat: str, spec: str) -> str:
    text = cell(v.diagnostic(stat), spec)
    if text != '-' and v.masks_self and stat in OWN_KEY_STATS:
        text += '†'
    return text


def _has_diagnostics(variants: Sequence[Variant]) -> bool:
    return any(v.diagnostic('entropy') is not None for v in variants)


def diagnostics_rows(variants: Sequence[Variant]) -> List[list]:
    out = []
    for v in sorted(variants, key=row_key):
        out.append([v.track, v.algo, v.variant]
                   + [_diagnostic_cell(v, s, spec)
                      for s, _, spec in DIAGNOSTIC_COLUMNS]
                   + [_chance_cell(v)])
        init = v.diagnostic('logit_asymmetry', 'diagnostics_init')
        if init is not None:
            out.append([v.track, v.algo, f'{v.variant} @ init',
                        cell(init, '.2f')] + ['-'] * (
                            len(DIAGNOSTIC_COLUMNS)))
    return out


def _chance_cell(v: Variant) -> str:
    image = v.diagnostic('source_mass_chance_image')
    objects = v.diagnostic('source_mass_chance_objects')
    if image is None or objects is None:
        return '-'
    return f'{image:.3f} / {objects:.3f}'


def intervention_rows(variants: Sequence[Variant],
                      results: Results) -> List[list]:
    out = []
    for v in sorted(variants, key=row_key):
        for how in INTERVENTIONS:
            rid = row_id(v.track, v.head, how)
            c = results.interventions.get(rid)
            if c is None:
                continue
            changed = results.outcomes[rid]
            out.append([
                rid, ' / '.join(f'{v.by_seed[s]:.1f}' for s in c.pairs),
                ' / '.join(f'{changed.values[s]:.1f}' for s in c.pairs),
                _delta_cell(c),
                _with_holm(c.p_signflip, c.p_signflip_holm, c.testable),
                _rate_cell(changed), _mcnemar_cell(c)])
    return out


def contrast_rows(results: Results) -> List[list]:
    return [[c.factor, c.row, c.reference, len(c.pairs), _delta_cell(c),
             _with_holm(c.p_signflip, c.p_signflip_holm, c.testable),
             _mcnemar_cell(c)] for c in results.contrasts]


def source_rows(variants: Sequence[Variant],
                results: Results) -> List[list]:
    """Per seed of each cyclic reference: solved or not, its source mass and
    logit asymmetry (trained and at initialisation)."""
    out = []
    for v in sorted(variants, key=row_key):
        if v.track not in SOLVED_TRACKS or v.head != REFERENCE:
            continue
        solved = results.outcomes[row_id(v.track, v.head)].solved
        mass = v.diagnostic_per_seed('source_mass')
        asym = v.diagnostic_per_seed('logit_asymmetry')
        init = v.diagnostic_per_seed('logit_asymmetry', 'diagnostics_init')
        for seed, miou in v.by_seed.items():
            out.append([row_id(v.track, v.head), seed, f'{miou:.1f}',
                        'yes' if solved.get(seed) else 'no',
                        cell(mass.get(seed), '.3f'),
                        cell(asym.get(seed), '.2f'),
                        cell(init.get(seed), '.2f')])
    return out


def _invocation_lines(invocations: Sequence[dict]) -> str:
    if not invocations:
        return ''
    lines = ['\nProduced by (wall time of each invocation; runs already '
             'complete are not trained again):\n']
    for item in invocations:
        jobs = f', --jobs {item["jobs"]}' if item.get('jobs') else ''
        lines.append(f'- `{item.get("command")}` at commit '
                     f'{item.get("commit")}, {item.get("started")}: '
                     f'{item.get("minutes")} min wall{jobs}, '
                     f'{item.get("trained")} of {item.get("runs")} runs '
                     'trained\n')
    return ''.join(lines)


def to_markdown(variants: List[Variant], problems: List[str],
                machine: str = '', invocations: Sequence[dict] = ()) -> str:
    results = analyse(variants)
    text = markdown_table(MAIN_HEADER, main_rows(variants, results))
    text += design_text(variants)
    if machine:
        text += f'\nMachine: {machine}\n'
    runs_on = machine_lines(variants)
    if runs_on:
        text += '\nThe runs ran on:\n' + runs_on
    text += _invocation_lines(invocations)
    text += ('\nmIoU on the held-out test split (generated from a stream of '
             'its own, never used for design choices) at the last '
             'iteration (`(val)`: the last validation, for runs outside '
             'the embedded study); mean ± sample std over seeds. Δ vs '
             'separate: the paired difference to non-local `separate` on the '
             'same track and backbone over the seeds both have, with a 95 % '
             't interval (a description; the tests are exact). McNemar: '
             'seeds solved by the row only / by `separate` only. Params and '
             'FLOPs of the whole model (FLOPs include attention; 1 '
             'multiply-add = 1 FLOP) for one image. Step: median training '
             'step time; memory: peak CUDA allocation or, on CPU, peak '
             'resident set of the process.\n')
    if _has_diagnostics(variants):
        text += '\n' + markdown_table(
            ('Track', 'Head', 'qkv_mode')
            + tuple(t for _, t, _ in DIAGNOSTIC_COLUMNS)
            + ('source chance (image / objects)', ),
            diagnostics_rows(variants))
        text += ('\nAttention diagnostics (test split, final checkpoint, '
                 'mean over seeds and criss-cross hops; `@ init`: the model '
                 'as its seed initialises it): logit asym. = '
                 '‖C − Cᵀ‖/‖C‖ over off-diagonal entries of the '
                 'double-centred log-weights C (0 for a symmetric score '
                 'such as Q = K; - where the map is not square or is '
                 'query-independent; batches whose weights underflowed to '
                 'exactly 0 are left out); self top-1 = share of query '
                 'positions whose top key is their own position, over '
                 'labelled object (obj) or unlabelled background (bg) '
                 'positions (chance: 1 / keys); self-wt ×keys = the weight a '
                 'position gives itself × the number of keys (1 = uniform); '
                 '† = measured with the self mask lifted; entropy = '
                 'normalised entropy (1 = uniform); q-indep. = mean cosine '
                 "distance between different queries' maps (0 = "
                 'query-independent); mass on source = attention mass that '
                 'object pixels put on the object their label comes from '
                 '(cyclic track), with what uniform attention over the image '
                 'or over the three cycle objects would put there.\n')
    interventions = intervention_rows(variants, results)
    if interventions:
        text += '\nInterventions on the trained `separate` models (test ' \
            'time, weights unchanged): logits S replaced by (S + Sᵀ)/2 ' \
            '(`symmetric`) or Sᵀ (`transpose`), against the model as ' \
            'trained, per seed:\n\n' + markdown_table(
                ('Row', 'as trained', 'intervened', 'Δ [95% CI]',
                 'p sign-flip (Holm)', 'solved [95% CI]',
                 'McNemar only row/only ref: p (Holm)'), interventions)
    sources = source_rows(variants, results)
    if sources:
        text += '\nPer seed of `separate` on cyclic: solved or not, mass ' \
            'on source, logit asymmetry trained and at initialisation:\n\n' \
            + markdown_table(('Row', 'seed', 'test mIoU', 'solved',
                              'mass on source', 'logit asym.',
                              'logit asym. @ init'), sources)
    contrasts = contrast_rows(results)
    if contrasts:
        text += '\nThe factorial\'s contrasts (row against control over ' \
            'their paired seeds; secondary family):\n\n' + markdown_table(
                ('Factor', 'Row', 'Control', 'Pairs', 'Δ [95% CI]',
                 'p sign-flip (Holm)',
                 'McNemar only row/only control: p (Holm)'), contrasts)
    if problems:
        text += ('\nRuns and files not in the table (missing, failed, '
                 'partial, not evaluated, corrupt or ignored):\n')
        text += ''.join(f'- {p}\n' for p in problems)
    return text


CSV_HEADER = (
    'row', 'kind', 'track', 'head', 'qkv_mode', 'config', 'reference',
    'factor', 'family', 'seeds', 'n', 'test_miou_mean', 'test_miou_std',
    'test_miou_per_seed', 'solved', 'solve_rate', 'solve_ci_low',
    'solve_ci_high', 'solved_per_seed', 'paired_seeds', 'delta',
    'delta_ci_low', 'delta_ci_high', 'p_signflip', 'p_signflip_holm',
    'mcnemar_only_row', 'mcnemar_only_reference', 'p_mcnemar',
    'p_mcnemar_holm', 'p_fisher', 'detectable_effect', 'test_possible',
    'params', 'flops', 'step_time_s', 'peak_memory_mib', 'val_miou_curve',
    'loss_sha256_per_seed', 'loss_iters_per_seed', 'commits', 'threads',
    'cpu_capability', 'own_key_stats_lifted', 'problems') + tuple(
        c for s in DIAGNOSTICS for c in (s, f'{s}_per_seed')) + (
            'logit_asymmetry_init', 'logit_asymmetry_init_per_seed')


def _comparison_cells(c: Optional[Comparison]) -> list:
    if c is None:
        return [''] * 13
    m = c.mcnemar
    return [
        ' '.join(map(str, c.pairs)), c.delta.mean if c.delta else '',
        *((c.delta.low, c.delta.high) if c.delta else ('', '')),
        c.p_signflip, c.p_signflip_holm, m.only_a if m else '',
        m.only_b if m else '', m.p if m else '', c.p_mcnemar_holm,
        c.p_fisher, c.detectable, c.testable]


def _outcome_cells(o: Optional[Outcome]) -> list:
    values = o.values if o else {}
    rate = o.solve_rate if o else None
    mean = statistics.fmean(values.values()) if values else ''
    std = (statistics.stdev(values.values()) if len(values) > 1 else
           (0.0 if values else ''))
    return [' '.join(map(str, sorted(values))), len(values), mean, std,
            _seeds_text(values, '.2f'),
            *((rate[0], rate[0] / rate[1], rate[2], rate[3]) if rate
              else ('', '', '', '')),
            _seeds_text({s: int(b) for s, b in o.solved.items()})
            if o and o.solved else '']


def to_csv(variants: List[Variant]) -> str:
    """One row per variant, intervention and contrast: per-seed values of
    every statistic, the comparison with its reference or control, cost,
    validation curve, loss SHA-256 per seed, and each diagnostic's mean and
    per-seed values (``seed:value``)."""
    results = analyse(variants)
    rows = []
    empty_run = [''] * 12
    empty_diag = [''] * (2 * len(DIAGNOSTICS) + 2)
    for v in sorted(variants, key=row_key):
        rid = row_id(v.track, v.head)
        c = results.rows.get(rid)
        commits = sorted({c_ for r in v.runs.values()
                          for c_ in r.get('commits') or []})
        rows.append([
            rid, 'variant', v.track, v.algo, v.variant, v.config,
            c.reference if c else '', '',
            ('primary' if c.primary else 'secondary') if c else '',
            *_outcome_cells(results.outcomes.get(rid)),
            *_comparison_cells(c),
            v.first('params'), v.first('flops'), v.median_of('step_time_s'),
            v.median_of('peak_memory_mib'),
            ' '.join(f'{it}:{m:.2f}' for it, m in v.val_curve()),
            _seeds_text(v.per_seed('loss_sha256')),
            _seeds_text(v.per_seed('loss_iters')), ' '.join(commits),
            ' '.join(sorted({str(r.get('threads'))
                             for r in v.runs.values()})),
            ' '.join(sorted({str(r.get('cpu_capability'))
                             for r in v.runs.values()})),
            v.masks_self, '; '.join(v.problems)
        ] + [x for s in DIAGNOSTICS for x in (
            v.diagnostic(s), _seeds_text(v.diagnostic_per_seed(s)))] + [
                v.diagnostic('logit_asymmetry', 'diagnostics_init'),
                _seeds_text(v.diagnostic_per_seed('logit_asymmetry',
                                                  'diagnostics_init'))])
        for how in INTERVENTIONS:
            irid = row_id(v.track, v.head, how)
            ic = results.interventions.get(irid)
            if ic is None:
                continue
            rows.append([irid, 'intervention', v.track, v.algo, v.variant,
                         v.config, ic.reference, how, 'secondary',
                         *_outcome_cells(results.outcomes[irid]),
                         *_comparison_cells(ic), *empty_run, *empty_diag])
    for c in results.contrasts:
        first = results.outcomes[c.row]
        rows.append([f'contrast/{c.row.split("/", 1)[1]}-vs-'
                     f'{c.reference.split("/", 1)[1]}', 'contrast',
                     first.track, c.row.split('/', 1)[1], '', '',
                     c.reference, c.factor, 'secondary',
                     *_outcome_cells(first), *_comparison_cells(c),
                     *empty_run, *empty_diag])
    return csv_text(CSV_HEADER, rows)


def plot(variants: List[Variant], path: str) -> None:
    """Per track: test mIoU per variant (mean ± std, seeds as dots, the
    solve threshold) above, the validation learning curves (mean over
    seeds) below, as a PNG."""
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
                        key=row_key)
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
        if track in SOLVED_TRACKS:
            bars.axhline(SOLVE_THRESHOLD, color='r', linewidth=0.8,
                         linestyle=':')
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
