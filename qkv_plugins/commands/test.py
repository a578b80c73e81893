"""Evaluate a checkpoint on a config's test set (mmseg's tools/test.py)."""
import argparse
import json
import os

from mmengine.config import DictAction

from ..cli import at_least
from ..io import write_text_atomic
from ..training import LAUNCHERS, CheckpointMismatch, test
from ..workdir import DIAGNOSTICS_FILE, LIFTED_DIAGNOSTICS_FILE


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test a segmentor')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', nargs='?',
                        help='checkpoint file (omitted with --at-init)')
    parser.add_argument('--at-init', action='store_true',
                        help='evaluate the model as the config\'s seed '
                        'initialises it, without a checkpoint (a reference '
                        'for the diagnostics)')
    parser.add_argument('--logit-transform', choices=('symmetric',
                                                      'transpose'),
                        help='test-time intervention on every attention '
                        'layer\'s logits S: (S + Sᵀ)/2 or Sᵀ (the weights '
                        'are not changed)')
    parser.add_argument('--work-dir', help='the dir to save logs and metrics')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings, e.g. key=value a.b=1')
    parser.add_argument('--diagnostics', action='store_true',
                        help='also write attention diagnostics '
                        f'({DIAGNOSTICS_FILE}) to the work dir')
    parser.add_argument('--diagnostics-batches', type=at_least(0), default=8,
                        help='batches the diagnostics analyse (0: all)')
    parser.add_argument('--lift-mask', action='store_true',
                        help='diagnostics with every layer\'s mask_self '
                        f'lifted, to {LIFTED_DIAGNOSTICS_FILE} (the outputs '
                        'change: the metrics are not the model\'s own)')
    parser.add_argument('--diagnostics-out', metavar='NAME',
                        help='file name of the diagnostics in the work dir '
                        f'(default: {DIAGNOSTICS_FILE}, or '
                        f'{LIFTED_DIAGNOSTICS_FILE} with --lift-mask)')
    parser.add_argument('--metrics-out', metavar='FILE',
                        help='also write the metrics to FILE as JSON')
    parser.add_argument('--allow-partial', action='store_true',
                        help='evaluate even if the checkpoint lacks some of '
                        "the model's weights or has others (they stay as "
                        'initialised)')
    parser.add_argument('--allow-other-variant', action='store_true',
                        help='evaluate a checkpoint whose recorded attention '
                        'options (qkv_mode, similarity, mask_self, '
                        'num_heads, ...) differ from the config\'s')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.diagnostics_out is not None and (
            os.path.basename(args.diagnostics_out) != args.diagnostics_out
            or args.diagnostics_out in ('', '.', '..')):
        raise SystemExit(f'test: --diagnostics-out {args.diagnostics_out!r} '
                         'must be a file name (it is written in the work '
                         'dir)')
    if (args.checkpoint is None) != args.at_init:
        raise SystemExit('test: give a checkpoint or --at-init (not both)')
    try:
        diagnostics = (args.diagnostics or args.lift_mask
                       or args.diagnostics_out is not None)
        if diagnostics:
            diagnostics = dict(max_batches=args.diagnostics_batches or None)
            if args.lift_mask:
                diagnostics.update(lift_mask=True,
                                   out_file=LIFTED_DIAGNOSTICS_FILE)
            if args.diagnostics_out is not None:
                diagnostics.update(out_file=args.diagnostics_out)
        metrics = test(args.config, args.checkpoint,
                       cfg_options=args.cfg_options, work_dir=args.work_dir,
                       launcher=args.launcher, diagnostics=diagnostics,
                       allow_partial=args.allow_partial,
                       allow_other_variant=args.allow_other_variant,
                       logit_transform=args.logit_transform)
    except CheckpointMismatch as error:
        raise SystemExit(f'test: {error}') from None
    from mmengine.dist import get_rank
    if args.metrics_out and get_rank() == 0:
        write_text_atomic(args.metrics_out, json.dumps(
            dict(checkpoint=args.checkpoint, metrics=metrics), indent=1))


if __name__ == '__main__':
    main()
