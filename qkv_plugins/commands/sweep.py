"""Run a matrix of configs × seeds with tools/train.py.

Complete runs are skipped, incomplete ones resumed; progress is printed and
the plan with each run's status is kept in WORK_ROOT/sweep.json.

Example:
    python tools/sweep.py configs/qkv_study/*cyclic*.py --seeds 0 1 2 \
        --work-root work_dirs/study --jobs 2
"""
import argparse
from typing import Optional, Sequence

from ..cli import at_least
from ..study.sweep import plan, sweep


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument('--seeds', nargs='+', type=at_least(0),
                        default=[0, 1, 2])
    parser.add_argument('--work-root', default='work_dirs/study')
    parser.add_argument('--jobs', type=at_least(1), default=1,
                        help='runs at a time (threads are split among them)')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='passed to every run, e.g. train_cfg.max_iters=100')
    args = parser.parse_args(argv)
    status = sweep(plan(args.configs, args.seeds, args.work_root),
                   args.work_root, args.cfg_options, args.jobs)
    failed = [name for name, s in status.items() if s['status'] != 'complete']
    if failed:
        raise SystemExit(f'{len(failed)} runs failed or in conflict: '
                         f'{failed}')


if __name__ == '__main__':
    main()
