"""The one Markdown / CSV table writer of the benchmarks, the study and the
node check: header + rows in, text out (cells escaped for Markdown)."""
import csv
import io
from typing import Iterable, Sequence


def escape_cell(value) -> str:
    """A value as one Markdown table cell: ``|`` escaped, line breaks as
    spaces (a run folder may be named with either)."""
    text = '' if value is None else str(value)
    return (text.replace('\\', '\\\\').replace('|', '\\|')
            .replace('\r', ' ').replace('\n', ' '))


def markdown_table(header: Sequence[str],
                   rows: Iterable[Sequence]) -> str:
    """A GitHub Markdown table, one line per row, ending in a newline."""
    lines = ['| ' + ' | '.join(escape_cell(h) for h in header) + ' |',
             '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(escape_cell(c) for c in row) + ' |'
              for row in rows]
    return '\n'.join(lines) + '\n'


def csv_text(header: Sequence[str], rows: Iterable[Sequence],
             lineterminator: str = '\n') -> str:
    """CSV with a header line (None cells empty).

    Args:
        header: Column names.
        rows: One sequence of cells per row.
        lineterminator: ``'\\n'``, or ``'\\r\\n'`` (the csv module's
            default) for the benchmark tables, which were published so.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=lineterminator)
    writer.writerow(header)
    for row in rows:
        writer.writerow(['' if c is None else c for c in row])
    return buffer.getvalue()
