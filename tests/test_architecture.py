"""The floors of DESIGN.md: a room imports only rooms below it (or beside it
where DESIGN.md says so), never above. Every import of every module of the
package is read with ``ast`` (relative, absolute and function-level ones);
nothing is imported."""
import ast
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / 'qkv_plugins'

# The room of each sub-package, and of each top-level module.
PACKAGE_ROOMS = {
    'layers': 'layers', 'compat': 'compat', 'stats': 'stats', 'data': 'data',
    'mmseg': 'mmseg', 'bench': 'bench', 'study': 'study', 'check': 'check',
    'commands': 'door',
}
MODULE_ROOMS = {
    # leaves every room may use (but layers): files, argparse types, the
    # machine, the one table writer, the names of a work dir's files
    'io': 'base', 'cli': 'base', 'machine': 'base', 'report': 'base',
    'workfiles': 'base',
    'workdir': 'run', 'training': 'run', 'run_record': 'run',  # a run's life
    # (DESIGN.md: run/)
    '__init__': 'package',  # `import qkv_plugins`: registers layers, glue
    '__main__': 'door',
}
# Floors from the ground up: layers < compat < stats < data < mmseg <
# (package) < run < bench < study < check < door. A room imports only these.
_GLUE = {'base', 'layers', 'compat', 'stats', 'data', 'mmseg'}
ALLOWED = {
    'layers': {'layers'},  # usable from mmseg, mmdet or plain PyTorch
    'base': {'base'},
    'compat': {'compat', 'base'},  # beside layers
    'stats': {'stats', 'layers', 'compat', 'base'},
    'data': {'data', 'stats', 'layers', 'compat', 'base'},
    'mmseg': _GLUE,  # never study, bench, check, run
    'package': _GLUE,
    'run': _GLUE | {'package', 'run'},
    'bench': _GLUE | {'package', 'run', 'bench'},
    'study': _GLUE | {'package', 'run', 'bench', 'study'},
    'check': _GLUE | {'package', 'run', 'bench', 'study', 'check'},
    # python -m qkv_plugins and the mains of the commands: only they (and
    # tools/, tests/) import check
    'door': _GLUE | {'package', 'run', 'bench', 'study', 'check', 'door'},
}
# Third-party toolkits a room must not know (DESIGN.md).
FORBIDDEN = {
    'layers': ('mmseg', 'mmdet', 'mmcv.ops'),
    'compat': ('mmseg', 'mmdet'),
    'stats': ('mmseg', 'mmdet'),
    'data': ('mmseg', 'mmdet'),
    'base': ('mmseg', 'mmdet'),
}


def module_name(path: Path) -> str:
    """``qkv_plugins/a/b.py`` → ``qkv_plugins.a.b`` (a package: its own)."""
    parts = path.relative_to(REPO).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def room_of(module: str) -> Optional[str]:
    """The room of a ``qkv_plugins`` module; None outside the package or
    for a module the tables above do not place."""
    parts = module.split('.')
    if parts[0] != 'qkv_plugins':
        return None
    if len(parts) == 1:
        return 'package'
    if parts[1] in PACKAGE_ROOMS:
        return PACKAGE_ROOMS[parts[1]]
    return MODULE_ROOMS.get(parts[1])


def _is_package_module(module: str) -> bool:
    path = REPO.joinpath(*module.split('.'))
    return path.with_suffix('.py').is_file() or path.is_dir()


def imports(path: Path, source: str) -> Iterator[Tuple[int, str]]:
    """(line, absolute module name) of every import in ``source`` (the text
    of ``path``); ``from pkg import sub`` names ``pkg.sub`` when that is a
    module of the package."""
    name = module_name(path).split('.')
    package = name if path.name == '__init__.py' else name[:-1]
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = '.'.join(base + ([node.module] if node.module
                                          else []))
            else:
                target = node.module
            for alias in node.names:
                sub = f'{target}.{alias.name}'
                yield node.lineno, (sub if target.startswith('qkv_plugins')
                                    and _is_package_module(sub) else target)


def violations(path: Path, source: str) -> List[str]:
    """Each import of ``source`` that breaks a floor, as a sentence naming
    the module, the import and the rule."""
    module = module_name(path)
    room = room_of(module)
    if room is None:
        return [f'{module}: no room; place it in PACKAGE_ROOMS or '
                'MODULE_ROOMS of tests/test_architecture.py (DESIGN.md)']
    found = []
    for line, target in dict.fromkeys(imports(path, source)):  # unique
        where = f'{module}:{line} imports {target}'
        for toolkit in FORBIDDEN.get(room, ()):
            if target == toolkit or target.startswith(toolkit + '.'):
                found.append(f'{where}: {room} knows no {toolkit} '
                             '(DESIGN.md)')
        if not target.startswith('qkv_plugins'):
            continue
        other = room_of(target)
        if other is None:
            found.append(f'{where}: that module has no room')
        elif other not in ALLOWED[room]:
            found.append(f'{where} (room {other}): {room} may import only '
                         f'{sorted(ALLOWED[room])}; a room imports only '
                         'rooms below it (DESIGN.md)')
    return found


MODULES = sorted(p for p in PACKAGE.rglob('*.py')
                 if '__pycache__' not in p.parts)


@pytest.mark.parametrize('path', MODULES,
                         ids=lambda p: module_name(p).replace('.', '/'))
def test_module_imports_only_rooms_below_it(path):
    found = violations(path, path.read_text())
    assert not found, '\n'.join(found)


@pytest.mark.parametrize('module,source,rule', [
    ('mmseg/hook_x.py', 'from ..study.demo import main',
     'mmseg may import only'),
    ('mmseg/hook_x.py', 'def f():\n    from qkv_plugins.bench import x',
     'mmseg may import only'),
    ('stats/x.py', 'from ..data import source_of', 'stats may import only'),
    ('data/x.py', 'import mmseg.registry', 'data knows no mmseg'),
    ('layers/x.py', 'from ..io import cell', 'layers may import only'),
    ('layers/x.py', 'from mmcv.ops import CrissCrossAttention',
     'layers knows no mmcv.ops'),
    ('study/x.py', 'from ..check import run', 'study may import only'),
    ('bench/__init__.py', 'from . import layers', None),
    ('mmseg/x.py', 'from .. import workfiles', None),
    ('mmseg/x.py', 'from .. import workdir', 'mmseg may import only'),
    ('newroom/x.py', 'import os', 'no room'),
])
def test_the_rules_catch_what_they_should(module, source, rule):
    found = violations(PACKAGE / module, source)
    if rule is None:
        assert found == []
    else:
        assert len(found) == 1 and rule in found[0], found
        assert module_name(PACKAGE / module) in found[0]
