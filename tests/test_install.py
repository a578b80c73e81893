"""Installed as users install: a wheel (not the editable checkout) in a
fresh venv that reuses .venv's packages, trained with MMSegmentation's own
training script (the one ``mim train mmseg`` runs) on the README's two
config snippets."""
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from mmengine.config import Config

from qkv_plugins.check.cityscapes import make_cityscapes_tree, shrink_config
from qkv_plugins.compat import sync_bn_to_bn

from .helpers import CONFIGS, REPO

SNIPPETS = ('qkv_attention/qkv-nonlocal-shared_r50-d8_4xb2-40k_cityscapes-'
            '512x1024.py',
            'qkv_attention/fcn-qkvnl-stage4_r50-d8_4xb2-40k_cityscapes-'
            '512x1024.py')


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """A venv with the qkv_plugins wheel and .venv's packages on its path;
    returns its python."""
    root = tmp_path_factory.mktemp('wheel')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                    '--no-build-isolation', '-q', '-w', str(root / 'dist'),
                    str(REPO)], check=True, capture_output=True)
    wheel = next((root / 'dist').glob('qkv_plugins-*.whl'))
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip',
                    str(root / 'venv')], check=True)
    python = root / 'venv' / 'bin' / 'python'
    site = Path(subprocess.run(
        [str(python), '-c', 'import sysconfig; '
         'print(sysconfig.get_paths()["purelib"])'],
        check=True, capture_output=True, text=True).stdout.strip())
    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--no-deps',
                    '--target', str(site), str(wheel)], check=True,
                   capture_output=True)
    # .venv's packages after the wheel's (its editable finder is not read:
    # .pth files are read in site dirs only, not in what they add)
    (site / 'zz_reuse_venv.pth').write_text(
        sysconfig.get_paths()['purelib'] + '\n')
    # Python 3.12 has no distutils: setuptools' stand-in is switched on by a
    # .pth file, read in a site dir only, so it comes along after the path
    shim = Path(sysconfig.get_paths()['purelib']) / 'distutils-precedence.pth'
    if shim.is_file():
        (site / 'zzz_distutils-precedence.pth').write_text(shim.read_text())
    return python


def test_the_wheel_is_what_imports(installed, tmp_path):
    out = subprocess.run(
        [str(installed), '-c', 'import qkv_plugins; print(qkv_plugins.__file__)'],
        cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert str(installed.parents[1]) in out and str(REPO) not in out


@pytest.mark.parametrize('snippet', SNIPPETS, ids=lambda s: Path(s).stem)
def test_mmseg_own_train_script_trains_the_readme_snippet(installed, snippet,
                                                         tmp_path):
    import mmseg
    data = make_cityscapes_tree(tmp_path / 'cityscapes')
    cfg = Config.fromfile(str(CONFIGS / snippet))
    shrink_config(cfg, data, (128, 64), (64, 64), reduce_zero_label=False)
    cfg.model = sync_bn_to_bn(cfg.model)  # SyncBN needs CUDA
    config = tmp_path / 'config.py'
    cfg.dump(str(config))
    train = Path(mmseg.__file__).parent / '.mim' / 'tools' / 'train.py'
    result = subprocess.run(
        [str(installed), str(train), str(config), '--work-dir',
         str(tmp_path / 'work')], cwd=tmp_path, capture_output=True,
        text=True, timeout=600, env={'OMP_NUM_THREADS': '2',
                                     'PATH': '/usr/bin:/bin'})
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert 'Iter(train) [2/2]' in log and 'mIoU' in log
    assert (tmp_path / 'work' / 'iter_2.pth').is_file()


def test_the_door_reaches_the_commands_without_tools(installed, tmp_path):
    """A wheel has no tools/: ``python -m qkv_plugins`` lists and runs the
    commands (the generated-dataset package included)."""
    run = lambda *args: subprocess.run(
        [str(installed), '-m', 'qkv_plugins', *args], cwd=tmp_path,
        capture_output=True, text=True, timeout=300)
    helped = run('--help')
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert '  make-dataset ' in helped.stdout and '  check ' in helped.stdout
    made = run('make-dataset', '--out', str(tmp_path / 'd'), '--tracks',
               'cyclic', '--num-train', '1', '--num-val', '1', '--num-test',
               '1')
    assert made.returncode == 0, made.stderr[-3000:]
    assert (tmp_path / 'd' / 'manifest.json').is_file()
