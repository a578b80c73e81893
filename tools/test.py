"""Evaluate a checkpoint on a config's test set (mmseg's tools/test.py)."""
import argparse

from mmengine.config import DictAction

from qkv_plugins.training import LAUNCHERS, build_runner


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings, e.g. key=value a.b=1')
    parser.add_argument('--diagnostics', action='store_true',
                        help='also write attention diagnostics '
                        '(attention_diagnostics.json) to the work dir')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    runner = build_runner(args.config, cfg_options=args.cfg_options,
                          work_dir=args.work_dir, launcher=args.launcher,
                          load_from=args.checkpoint,
                          extra_hooks=[dict(type='AttentionDiagnosticsHook')]
                          if args.diagnostics else ())
    runner.test()


if __name__ == '__main__':
    main()
