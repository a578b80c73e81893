"""Train a segmentor from a config (mmseg's tools/train.py, with qkv_plugins'
fixes for the pinned stack: CPU distributed, safe checkpoint loading, a
locked work dir, finished runs left finished)."""
import argparse
import logging
import os
import sys

from mmengine.config import DictAction

from ..training import LAUNCHERS, train
from ..workdir import WorkDirBusy, WorkDirConflict


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a segmentor')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument('--resume', action='store_true',
                        help='resume from the newest complete checkpoint in '
                        'the work dir (starts afresh if there is none; does '
                        'nothing if the run there is complete)')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic-mixed-precision training')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings, e.g. key=value a.b=1')
    parser.add_argument('--launcher', choices=LAUNCHERS, default='none')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        train(args.config, cfg_options=args.cfg_options,
              work_dir=args.work_dir, launcher=args.launcher, amp=args.amp,
              resume=args.resume)
    except (WorkDirBusy, WorkDirConflict) as error:
        raise SystemExit(f'train: {error}') from None
    if args.launcher != 'none':
        # A distributed CPU (gloo) process sometimes aborts in interpreter
        # teardown ("terminate called without an active exception") after
        # all its work is done, which the launcher reports as a failure:
        # flush what is buffered and leave without the teardown.
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


if __name__ == '__main__':
    main()
