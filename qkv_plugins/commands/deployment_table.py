"""Check every block's deployment and write the table (ONNX, torch.compile).

Runs the grid of every catalogued block x qkv_mode x similarity x mask_self
(criss-cross recurrence 1 and 2, token attention sr_ratio 1 and 2) and each
stock twin: ONNX export at 8x8 with height and width dynamic, ONNX Runtime
at 7x9 and 5x12 against PyTorch eager, torch.compile graph breaks in eval
and training. Writes benchmarks/deploy-cpu.md (the README's summary table,
then every case) and .csv (every case); prints the summary. The speed-up
column comes from a compile benchmark CSV (tools/benchmark_compile.py) when
one exists.

Examples:
    python tools/deployment_table.py
    python tools/deployment_table.py --layers gcnet --out-dir /tmp/deploy
"""
import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..layers.catalog import names
from . import command_line

DEFAULT_COMPILE_CSV = 'benchmarks/compile-cpu.csv'


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    parser.add_argument('--layers', nargs='+', choices=names(), default=None,
                        help='catalog names (default: all)')
    parser.add_argument('--compile-csv', default=DEFAULT_COMPILE_CSV,
                        help='compile benchmark CSV for the speed-up column '
                        '(absent: "not measured")')
    parser.add_argument('--out-dir', default='benchmarks')
    args = parser.parse_args(argv)
    # imported after parsing: a bad argument fails fast
    from ..bench.deploy_table import (cases_csv, read_speedups, render_summary,
                                      run_grid, summary_rows, to_markdown)
    from ..bench.onnx_runtime import ExportUnavailable, check_requirements
    from ..io import write_text_atomic
    try:
        check_requirements()
    except ExportUnavailable as error:
        print(f'deployment-table: {error}')
        return 2
    source = Path(args.compile_csv)
    speedups = read_speedups(source) if source.is_file() else None
    results, twin_results = run_grid(args.layers)
    rows = summary_rows(results, twin_results, speedups)
    command = command_line('deployment-table', argv)
    every = [r for _, r in results] + twin_results
    out = Path(args.out_dir) / 'deploy-cpu'
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out.with_suffix('.md'), to_markdown(
        rows, every, command, str(source) if speedups else None))
    write_text_atomic(out.with_suffix('.csv'), cases_csv(every))
    print(render_summary(rows))
    print(f'[deploy] wrote {out}.md (.csv)')
    exported_all = all(r.exported and r.parity.ok for r in every)
    return 0 if exported_all else 1


if __name__ == '__main__':
    sys.exit(main())
