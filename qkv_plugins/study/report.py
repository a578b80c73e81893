"""Write the table files (.md, .csv, .png) for a study root: the main table,
or the time-to-solve table for a root of time-to-solve runs."""
from pathlib import Path
from typing import Optional, Sequence

from ..io import write_text_atomic
from . import render, time_to_solve
from .collect import collect
from .names import is_time_to_solve


def write_report(root: str, out: Optional[str] = None,
                 machine: str = '',
                 invocations: Sequence[dict] = ()) -> str:
    """Write ``<out>.md``, ``<out>.csv`` and ``<out>.png``; return the
    Markdown. ``out`` defaults to ``<root>/table``."""
    variants, problems = collect(root)
    if not variants:
        raise FileNotFoundError(f'no runs found under {root!r} (expected '
                                '<root>/<config>/seed<k>/run_stats.json)')
    kind = (time_to_solve if all(is_time_to_solve(v.config)
                                 for v in variants) else render)
    out_path = Path(out) if out else Path(root) / 'table'
    text = kind.to_markdown(variants, problems, machine, invocations)
    write_text_atomic(out_path.with_suffix('.md'), text)
    write_text_atomic(out_path.with_suffix('.csv'), kind.to_csv(variants))
    if any(v.runs for v in variants):
        kind.plot(variants, str(out_path.with_suffix('.png')))
    return text
