"""Write the table files (.md, .csv, .png) for a study root."""
from pathlib import Path
from typing import Optional, Sequence

from ..io import write_text_atomic
from .table import collect, plot, to_csv, to_markdown


def write_report(root: str, out: Optional[str] = None,
                 machine: str = '',
                 invocations: Sequence[dict] = ()) -> str:
    """Write ``<out>.md``, ``<out>.csv`` and ``<out>.png``; return the
    Markdown. ``out`` defaults to ``<root>/table``."""
    variants, problems = collect(root)
    if not variants:
        raise FileNotFoundError(f'no runs found under {root!r} (expected '
                                '<root>/<config>/seed<k>/run_stats.json)')
    out_path = Path(out) if out else Path(root) / 'table'
    text = to_markdown(variants, problems, machine, invocations)
    write_text_atomic(out_path.with_suffix('.md'), text)
    write_text_atomic(out_path.with_suffix('.csv'), to_csv(variants))
    if any(v.runs for v in variants):
        plot(variants, str(out_path.with_suffix('.png')))
    return text
