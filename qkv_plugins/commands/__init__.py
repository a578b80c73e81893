"""One door for the commands: ``python -m qkv_plugins <command>``.

:data:`COMMANDS` names every user-facing command, the module whose
``main(argv)`` runs it and the thin ``tools/`` script that calls the same
``main`` (OpenMMLab habit; an installed wheel has no ``tools/``, the door
works there too). A command's module is imported only when it runs, so the
registry costs nothing. The mains without a room of their own (train, test,
sweep, table, ...) live beside it; they parse arguments and call the
library. This package is the top floor: only ``__main__``, ``tools/`` and the
tests import it (the sweep and the node check start
``python -m qkv_plugins.commands.train`` as processes of their own).
"""
import importlib
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

PROG = 'python -m qkv_plugins'


@dataclass(frozen=True)
class Command:
    """A user-facing command.

    Attributes:
        name: What follows ``python -m qkv_plugins``.
        module: Module with ``main(argv)``; it may return an exit code.
        summary: One line for ``--help``.
        tool: The script under ``tools/`` that calls the same ``main``.
    """
    name: str
    module: str
    summary: str
    tool: str

    def load(self) -> Callable[[Optional[Sequence[str]]], Optional[int]]:
        """The command's ``main`` (importing its module)."""
        return importlib.import_module(self.module).main


COMMANDS: Dict[str, Command] = {c.name: c for c in (
    Command('train', 'qkv_plugins.commands.train',
            'train a segmentor from a config', 'tools/train.py'),
    Command('test', 'qkv_plugins.commands.test',
            "evaluate a checkpoint on a config's test set", 'tools/test.py'),
    Command('sweep', 'qkv_plugins.commands.sweep',
            'train a matrix of configs x seeds', 'tools/sweep.py'),
    Command('table', 'qkv_plugins.commands.table',
            'study work dirs -> the table (Markdown, CSV, PNG)',
            'tools/make_table.py'),
    Command('compare-table', 'qkv_plugins.study.compare_tables',
            'compare a study table with a published one, bit for bit',
            'tools/compare_table.py'),
    Command('demo', 'qkv_plugins.study.demo',
            'the embedded study end to end (make demo)', 'tools/demo.py'),
    Command('make-dataset', 'qkv_plugins.commands.make_dataset',
            'generate the embedded dataset', 'tools/make_dataset.py'),
    Command('benchmark-layers', 'qkv_plugins.commands.benchmark_layers',
            "our layers against mmcv's blocks (--end-to-end: R-50-D8 "
            'training steps)', 'tools/benchmark_layers.py'),
    Command('benchmark-backbones', 'qkv_plugins.bench.backbones',
            "transformer backbones against mmseg's stock ones",
            'tools/benchmark_backbones.py'),
    Command('visualize', 'qkv_plugins.commands.visualize',
            'draw where chosen query pixels attend',
            'tools/visualize_attention.py'),
    Command('convert-checkpoint', 'qkv_plugins.commands.convert_checkpoint',
            'convert an NLHead/CCHead/DNLHead checkpoint for AttentionHead',
            'tools/convert_mmseg_checkpoint.py'),
    Command('benchmark-compile', 'qkv_plugins.commands.benchmark_compile',
            'torch.compile against eager per block (CPU training step)',
            'tools/benchmark_compile.py'),
    Command('deployment-table', 'qkv_plugins.commands.deployment_table',
            'every block through ONNX Runtime and torch.compile: the '
            'deployment table', 'tools/deployment_table.py'),
    Command('export-onnx', 'qkv_plugins.commands.export_onnx',
            'export a segmentor to ONNX; parity and latency in ONNX Runtime',
            'tools/export_onnx.py'),
    Command('check', 'qkv_plugins.check.run',
            'is this node ready? PASS/FAIL per item', 'tools/check_node.sh'),
    Command('layers', 'qkv_plugins.commands.layers',
            'list the layers, their options and per-mode parameter counts '
            '(the default)', 'tools/list_layers.py'),
)}
# No command, or only options (``--in-channels 512``): the layer listing.
DEFAULT = 'layers'


def usage() -> str:
    """The door's help: every command with its summary."""
    width = max(map(len, COMMANDS))
    lines = [f'usage: {PROG} [COMMAND] [ARGS ...]', '',
             'Every user-facing command of qkv_plugins (each also runs as '
             'its tools/ script).', f'Without a command, or with options '
             f'only, it runs `{DEFAULT}`.', '', 'commands:']
    lines += [f'  {c.name:<{width}}  {c.summary}' for c in COMMANDS.values()]
    lines += ['', f'`{PROG} COMMAND --help` tells a command\'s arguments.']
    return '\n'.join(lines)


def command_line(name: str, argv: Optional[Sequence[str]] = None) -> str:
    """How a published table names the command that wrote it: command
    ``name``'s ``tools/`` script and the arguments it was given (``argv``,
    else the process's own)."""
    args = sys.argv[1:] if argv is None else argv
    return ' '.join(['python', COMMANDS[name].tool, *map(str, args)])


def run(name: str, argv: Sequence[str]) -> int:
    """Run command ``name`` with ``argv``; its exit code (0 for None)."""
    main = COMMANDS[name].load()
    # argparse names the program after sys.argv[0]: the door, not __main__.py
    saved = sys.argv[0]
    sys.argv[0] = f'{PROG} {name}'
    try:
        code = main(list(argv))
    finally:
        sys.argv[0] = saved
    return code if isinstance(code, int) else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m qkv_plugins [COMMAND] [ARGS ...]``."""
    argv: List[str] = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (['-h'], ['--help']):
        print(usage())
        return 0
    if not argv or argv[0].startswith('-'):
        return run(DEFAULT, argv)
    if argv[0] not in COMMANDS:
        print(f'{PROG}: unknown command {argv[0]!r}\n\n{usage()}',
              file=sys.stderr)
        return 2
    return run(argv[0], argv[1:])
