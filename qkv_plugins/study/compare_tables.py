"""Compare a study table with a published one, bit for bit: every row and
seed of the reference must be in the new table with the same loss SHA-256
(every iteration's loss) and the same test mIoU. Exit 0 when they match.

Example:
    python tools/compare_table.py work_dirs/study/table.csv benchmarks/study.csv
"""
import argparse
import csv
import sys
from typing import Dict, List, Tuple


def _per_seed(text: str) -> Dict[str, str]:
    """``'0:a 1:b'`` -> {'0': 'a', '1': 'b'}."""
    return dict(part.split(':', 1) for part in text.split() if ':' in part)


def read_rows(path: str) -> Dict[str, dict]:
    with open(path, newline='') as file:
        return {row['row']: row for row in csv.DictReader(file)
                if row.get('kind', 'variant') == 'variant'}


def differences(new: Dict[str, dict],
                reference: Dict[str, dict]) -> Tuple[List[str], int]:
    """(what differs, how many seeds were compared)."""
    found, compared = [], 0
    for rid, ref in reference.items():
        if rid not in new:
            found.append(f'{rid}: missing from the new table')
            continue
        for column in ('loss_sha256_per_seed', 'test_miou_per_seed'):
            if column not in ref:
                found.append(f'{rid}: the reference has no {column}')
                continue
            want, got = (_per_seed(r.get(column, '')) for r in (ref,
                                                                 new[rid]))
            for seed, value in sorted(want.items()):
                if seed not in got:
                    found.append(f'{rid} seed {seed}: no {column} in the new '
                                 'table')
                elif got[seed] != value:
                    found.append(f'{rid} seed {seed}: {column} {got[seed]} '
                                 f'!= {value}')
                elif column == 'loss_sha256_per_seed':
                    compared += 1
        for column in ('cpu_capability', 'threads'):
            if ref.get(column) and new[rid].get(column) != ref.get(column):
                found.append(f'{rid}: {column} {new[rid].get(column)!r} != '
                             f'{ref.get(column)!r} (bits are reproducible '
                             'only on the same CPU capability and threads)')
    return found, compared


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[1:]))
    parser.add_argument('new', help='the table CSV to check')
    parser.add_argument('reference', help='the published table CSV')
    args = parser.parse_args(argv)
    found, compared = differences(read_rows(args.new),
                                  read_rows(args.reference))
    for line in found:
        print(f'[compare] DIFFERS {line}')
    if found:
        sys.exit(1)
    print(f'[compare] identical: {compared} runs (every iteration\'s loss '
          'and the test mIoU) match the reference')


if __name__ == '__main__':
    main()
