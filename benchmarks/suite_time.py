"""Test-suite time, old commit against new, from two JUnit XML files.

Each suite runs from its own worktree with that tree on PYTHONPATH, one
after the other on an otherwise idle machine, e.g.::

    (cd ../wt-old && PYTHONPATH=$PWD python -m pytest tests -q \
        --junitxml=/tmp/old.xml)
    (cd ../wt-new && PYTHONPATH=$PWD python -m pytest tests -q \
        --junitxml=/tmp/new.xml)
    python benchmarks/suite_time.py /tmp/old.xml /tmp/new.xml

Prints Markdown: the tests both commits have (what a change to shared code
can slow down), the tests only one has, and seconds per test file.
"""
import argparse
import collections
import xml.etree.ElementTree as ET
from typing import Dict, Tuple


def cases(path: str) -> Dict[Tuple[str, str], float]:
    """{(module, test name): seconds} of a JUnit XML file."""
    return {(case.get('classname'), case.get('name')): float(case.get('time'))
            for case in ET.parse(path).iter('testcase')}


def per_file(times: Dict[Tuple[str, str], float]):
    seconds, count = collections.Counter(), collections.Counter()
    for (module, _), value in times.items():
        name = module.split('.')[-1]
        seconds[name] += value
        count[name] += 1
    return seconds, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('old')
    parser.add_argument('new')
    args = parser.parse_args()
    old, new = cases(args.old), cases(args.new)
    both = set(old) & set(new)
    so, sn = sum(old[k] for k in both), sum(new[k] for k in both)
    only_old, only_new = set(old) - both, set(new) - both
    print(f'- Tests both commits have: {len(both)}; old {so:.1f} s, new '
          f'{sn:.1f} s, new/old {sn / so:.3f}.')
    print(f'- Only in old: {len(only_old)} tests, '
          f'{sum(old[k] for k in only_old):.1f} s; only in new: '
          f'{len(only_new)} tests, {sum(new[k] for k in only_new):.1f} s.')
    print(f'- All: old {sum(old.values()):.1f} s, new '
          f'{sum(new.values()):.1f} s (test time, without collection).\n')
    (to, no), (tn, nn) = per_file(old), per_file(new)
    print('| file | tests old | tests new | s old | s new |')
    print('|---|---|---|---|---|')
    for name in sorted(set(to) | set(tn), key=lambda f: -tn.get(f, 0)):
        print(f'| {name} | {no.get(name, "-")} | {nn.get(name, "-")} | '
              f'{to.get(name, 0):.1f} | {tn.get(name, 0):.1f} |')


if __name__ == '__main__':
    main()
