"""Evaluate a checkpoint on a config's test set (mmseg's tools/test.py)."""
import argparse

from mmengine.config import DictAction

from ..training import LAUNCHERS, CheckpointMismatch, test


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings, e.g. key=value a.b=1')
    parser.add_argument('--diagnostics', action='store_true',
                        help='also write attention diagnostics '
                        '(attention_diagnostics.json) to the work dir')
    parser.add_argument('--allow-partial', action='store_true',
                        help='evaluate even if the checkpoint lacks some of '
                        "the model's weights or has others (they stay as "
                        'initialised)')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        test(args.config, args.checkpoint, cfg_options=args.cfg_options,
             work_dir=args.work_dir, launcher=args.launcher,
             diagnostics=args.diagnostics, allow_partial=args.allow_partial)
    except CheckpointMismatch as error:
        raise SystemExit(f'test: {error}') from None


if __name__ == '__main__':
    main()
