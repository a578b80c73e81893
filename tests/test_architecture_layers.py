"""No ``forward`` in ``qkv_plugins/layers/`` branches on the mode: modes map
through dict tables to small builders, validated once in ``__init__``
(STYLE.md, "What to copy" 2; DESIGN.md: "No forward branches on the
mode")."""
import ast
from pathlib import Path
from typing import List

import pytest

import qkv_plugins.layers
from qkv_plugins.layers.options import QKV_MODES, SIMILARITIES

LAYERS_DIR = Path(qkv_plugins.layers.__file__).parent
FORWARDS = ('forward', 'forward_with_weights')
# option strings a forward must not compare against
MODE_STRINGS = frozenset(QKV_MODES) | frozenset(SIMILARITIES)
# attributes and names that hold such an option
MODE_NAMES = frozenset({'qkv_mode', 'mode', 'similarity', 'layout'})


def _names_a_mode(node: ast.AST) -> bool:
    """Whether ``node`` is a mode string, or reads a mode attribute/name."""
    if isinstance(node, ast.Constant):
        return node.value in MODE_STRINGS
    if isinstance(node, ast.Attribute):
        return node.attr in MODE_NAMES
    if isinstance(node, ast.Name):
        return node.id in MODE_NAMES
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_names_a_mode(e) for e in node.elts)
    return False


def mode_comparisons(source: str, filename: str = '<string>') -> List[str]:
    """``file:line function`` of every comparison against a mode inside a
    function called ``forward`` or ``forward_with_weights`` (nested
    functions included)."""
    found = []
    for func in ast.walk(ast.parse(source, filename)):
        if not (isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef))
                and func.name in FORWARDS):
            continue
        for node in ast.walk(func):
            operands = ([node.left, *node.comparators]
                        if isinstance(node, ast.Compare) else
                        [node.subject] if isinstance(node, ast.Match) else [])
            if any(_names_a_mode(o) for o in operands):
                found.append(f'{filename}:{node.lineno} {func.name}')
    return found


def test_the_check_catches_a_forward_that_branches_on_the_mode():
    source = '''
class Layer:
    def forward(self, x):
        if self.qkv_mode == 'separate':
            return x
        def inner():
            return mode in ('shared', 'identity')
        return inner()

    def forward_with_weights(self, x):
        match self.similarity:
            case 'cosine':
                return x

    def build(self, qkv_mode):
        return qkv_mode == 'separate'  # outside forward: allowed
'''
    assert [f.split(' ')[1] for f in mode_comparisons(source)] == [
        'forward', 'forward', 'forward_with_weights']


@pytest.mark.parametrize('path', sorted(LAYERS_DIR.glob('*.py')),
                         ids=lambda p: p.name)
def test_no_forward_in_layers_branches_on_the_mode(path):
    assert mode_comparisons(path.read_text(), str(path)) == []
