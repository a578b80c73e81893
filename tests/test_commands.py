"""One door for the commands: ``python -m qkv_plugins COMMAND`` reaches every
user-facing command (``--help`` lists them), each ``tools/`` script is a thin
call of the same ``main``, and the older entry points still work."""
import ast
import json
import os
import runpy
import subprocess
import sys

import pytest

from qkv_plugins.commands import COMMANDS
from qkv_plugins.commands import main as door
from qkv_plugins.layers.catalog import describe

from .helpers import REPO

NAMES = list(COMMANDS)
PYTHON_TOOLS = [n for n in NAMES if COMMANDS[n].tool.endswith('.py')]


def test_help_lists_every_command(capsys):
    assert door(['--help']) == 0
    out = capsys.readouterr().out
    for name, command in COMMANDS.items():
        assert f'  {name} ' in out and command.summary in out, name


@pytest.mark.parametrize('name', NAMES)
def test_command_help_through_the_door(name, capsys):
    with pytest.raises(SystemExit) as exit_:
        door([name, '--help'])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith('usage: ')


@pytest.mark.parametrize('name', NAMES)
def test_command_help_through_its_tool(name, capsys, monkeypatch):
    tool = REPO / COMMANDS[name].tool
    if tool.suffix == '.sh':
        result = subprocess.run(
            ['bash', str(tool), '--help'], cwd=REPO, capture_output=True,
            text=True, timeout=300, env=dict(os.environ,
                                             PYTHON=sys.executable))
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.startswith('usage: ')
        return
    monkeypatch.setattr(sys, 'argv', [str(tool), '--help'])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(tool), run_name='__main__')
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f'usage: {tool.name}')


def test_every_tool_is_a_command():
    tools = {f'tools/{p.name}' for p in (REPO / 'tools').glob('*.py')}
    registered = {c.tool for c in COMMANDS.values()}
    assert tools <= registered, f'not in COMMANDS: {tools - registered}'
    assert all((REPO / tool).is_file() for tool in registered)


@pytest.mark.parametrize('name', PYTHON_TOOLS)
def test_tool_only_calls_its_commands_main(name):
    command = COMMANDS[name]
    tree = ast.parse((REPO / command.tool).read_text())
    froms = [(node.module, [a.name for a in node.names])
             for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imports = {a.name for node in ast.walk(tree)
               if isinstance(node, ast.Import) for a in node.names}
    assert froms == [(command.module, ['main'])] and imports <= {'sys'}
    assert not any(isinstance(node, (ast.FunctionDef, ast.ClassDef))
                   for node in ast.walk(tree)), 'logic belongs in the package'


def test_no_command_or_only_options_lists_the_layers(capsys):
    assert door([]) == 0
    assert capsys.readouterr().out == describe(512) + '\n'
    assert door(['--in-channels', '64']) == 0
    assert capsys.readouterr().out == describe(64) + '\n'


def test_unknown_command_is_refused_naming_the_commands(capsys):
    assert door(['trian']) == 2
    err = capsys.readouterr().err
    assert "unknown command 'trian'" in err and '  train ' in err


def test_door_passes_the_arguments_on(tmp_path):
    from qkv_plugins.data import make_dataset
    assert door(['make-dataset', '--out', str(tmp_path / 'a'), '--seed', '3',
                 '--tracks', 'cyclic', '--num-train', '1', '--num-val', '1',
                 '--num-test', '1']) == 0
    make_dataset(tmp_path / 'b', seed=3, tracks=['cyclic'],
                 splits={'train': 1, 'val': 1, 'test': 1}, log=lambda _: None)
    manifest = [(tmp_path / d / 'manifest.json').read_bytes() for d in 'ab']
    assert manifest[0] == manifest[1]
    assert json.loads(manifest[0])['splits'] == {'train': 1, 'val': 1,
                                                 'test': 1}


@pytest.mark.filterwarnings('ignore::RuntimeWarning')  # already imported
@pytest.mark.parametrize('module', ['qkv_plugins.check',
                                    'qkv_plugins.bench.backbones',
                                    'qkv_plugins.study.demo'])
def test_module_entry_points_still_work(module, capsys, monkeypatch):
    monkeypatch.setattr(sys, 'argv', [module, '--help'])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module(module, run_name='__main__', alter_sys=True)
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith('usage: ')


def test_python_dash_m_qkv_plugins():
    """The real door, in a process of its own: --help, and today's listing
    (``python -m qkv_plugins --in-channels 512``)."""
    run = lambda *args: subprocess.run(
        [sys.executable, '-m', 'qkv_plugins', *args], cwd=REPO,
        capture_output=True, text=True, timeout=300)
    helped = run('--help')
    assert helped.returncode == 0, helped.stderr[-2000:]
    assert all(f'  {name} ' in helped.stdout for name in NAMES)
    listed = run('--in-channels', '64')
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert listed.stdout == describe(64) + '\n'
