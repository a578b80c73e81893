"""Turn study work dirs into the benchmark table (Markdown, CSV, PNG plot).

Example:
    python tools/make_table.py work_dirs/study --out work_dirs/study/table
"""
import argparse
from typing import Optional, Sequence

from ..study.report import write_report


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    parser.add_argument('work_root', help='root of the sweep work dirs')
    parser.add_argument('--out', help='output path without suffix (default: '
                        'WORK_ROOT/table)')
    parser.add_argument('--machine', default='',
                        help='machine description printed under the table')
    args = parser.parse_args(argv)
    text = write_report(args.work_root, args.out, args.machine)
    print(text)


if __name__ == '__main__':
    main()
