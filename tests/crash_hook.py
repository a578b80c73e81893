"""A test-only hook that kills the training process the hard way.

``QKV_TEST_CRASH=iter:N`` exits right after iteration N; ``save:N`` exits
while the checkpoint of iteration N is being written, leaving a half-written
temporary file as a kill during ``torch.save`` would. Unset: does nothing,
so a rerun of the same command trains on.
"""
import os

from mmengine.hooks import Hook
from mmengine.registry import HOOKS


def _crash_point():
    spec = os.environ.get('QKV_TEST_CRASH', '')
    if not spec:
        return None, None
    kind, at = spec.split(':')
    return kind, int(at)


@HOOKS.register_module()
class CrashHook(Hook):

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        # mmengine counts the iteration as done only after this hook.
        if _crash_point() == ('iter', runner.iter + 1):
            os._exit(9)

    def before_save_checkpoint(self, runner, checkpoint):
        if _crash_point() == ('save', runner.iter + 1):
            name = f'{runner.work_dir}/iter_{runner.iter + 1}.pth.' \
                f'{os.getpid()}.tmp'
            with open(name, 'wb') as f:
                f.write(b'PK\x03\x04 half a checkpoint')
            os._exit(9)
