"""The written answer cites measured numbers.

Every decimal number in the first section of docs/qkv.md, and every number
written right before a citation, is a cell of a published study table: a
citation ``[study-full.csv: cyclic/nonlocal-shared_qk, p_mcnemar_holm]``
(``column@seed`` for a per-seed column) follows the number it backs. A
sentence that says "significant" cites a Holm-adjusted p below 0.05 at its
declared family; one that says "did not differ" or "not significant" cites
a Holm p of at least 0.05 on a row where a test was possible.
"""
import csv
import re
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from .helpers import REPO

TABLES = ('benchmarks/study.csv', 'benchmarks/study-full.csv',
          'benchmarks/study-transformers.csv',
          'benchmarks/study-transformer-pilot-4500it.csv')
CITATION = re.compile(r'\[(?P<file>[\w.-]+\.csv): (?P<row>[^,\]]+), '
                      r'(?P<column>\w+)(?:@(?P<seed>\d+))?\]')
# a number, then at most 60 characters without a digit, then a citation
CITED = re.compile(r'(?<![\w.])(?P<number>[-+−]?\d[\d,]*(?:\.\d+)?)'
                   r'(?P<gap>[^\d\[]{0,60}?)(?=\[[\w.-]+\.csv: )')
DECIMAL = re.compile(r'(?<![\w.])[-+−]?\d+\.\d+')
SIGNIFICANT = re.compile(r'(?<!not )(?<!no )(?<!non-)\bsignificant(ly)?\b')
NULL = re.compile(r'did not differ|not significant(ly)?\b|no significant')
ALPHA = 0.05


def read_tables(root: Path, names=TABLES) -> Dict[str, Dict[str, dict]]:
    """{file name: {row id: row}} of the tables that exist."""
    tables = {}
    for name in names:
        path = root / name
        if path.exists():
            with open(path, newline='') as file:
                tables[path.name] = {r.get('row') or str(i): r for i, r in
                                     enumerate(csv.DictReader(file))}
    return tables


def cell(tables, match) -> Optional[float]:
    """The cited cell's value (a per-seed value with ``@seed``)."""
    row = tables.get(match['file'], {}).get(match['row'])
    if row is None or match['column'] not in row:
        return None
    text = row[match['column']]
    if match['seed'] is not None:
        text = dict(p.split(':', 1) for p in text.split() if ':' in p).get(
            match['seed'], '')
    try:
        return float(text)
    except ValueError:
        return None


def _number(text: str) -> float:
    return float(text.replace('−', '-').replace(',', ''))


def _same(written: str, value: float) -> bool:
    decimals = len(written.split('.')[1]) if '.' in written else 0
    number = _number(written)
    return round(abs(value), decimals) == round(abs(number), decimals)


def sentences(text: str) -> List[str]:
    """Sentences of Markdown prose (a period before a space or line end)."""
    return [s for s in re.split(r'(?<=[.;:!?])\s+(?=[A-Z*`(\d])|\n\n',
                                text) if s.strip()]


def problems(section: str, tables) -> List[str]:
    """What in ``section`` its tables do not support."""
    found = []
    prose = re.sub(r'`[^`]*`', '``', section)  # code spans are names
    for match in CITATION.finditer(prose):
        if cell(tables, match) is None:
            found.append(f'{match[0]}: no such cell')
    cited_spans = []
    for match in CITED.finditer(prose):
        citation = CITATION.match(prose, match.end())
        if citation is None:
            continue
        cited_spans.append(match.start('number'))
        value = cell(tables, citation)
        if value is not None and not _same(match['number'], value):
            found.append(f'{match["number"]} {citation[0]}: the cell is '
                         f'{value}')
    stripped = CITATION.sub(lambda m: '\0' * len(m[0]), prose)
    for match in DECIMAL.finditer(stripped):
        if match.start() not in cited_spans:
            found.append(f'{match[0]}: no citation follows it')
    for sentence in sentences(prose):
        ps = [cell(tables, m) for m in CITATION.finditer(sentence)
              if m['column'].endswith('_holm')]
        rows = [tables.get(m['file'], {}).get(m['row'], {})
                for m in CITATION.finditer(sentence)
                if m['column'].endswith('_holm')]
        short = sentence.strip()[:80]
        if NULL.search(sentence):
            if not any(p is not None and p >= ALPHA
                       and row.get('test_possible') == 'True'
                       for p, row in zip(ps, rows)):
                found.append(f'"{short}…": says no difference without a '
                             f'Holm p >= {ALPHA} on a testable row')
        elif SIGNIFICANT.search(sentence):
            if not any(p is not None and p < ALPHA for p in ps):
                found.append(f'"{short}…": says significant without a '
                             f'Holm p < {ALPHA}')
    return found


def _first_section(text: str) -> str:
    body = text.split('\n', 1)[1]  # after the title
    return body.split('\n## ', 1)[0]


# The rewrite from the declared study's tables is pending while the first
# section opens with this note; until then its numbers only have to be
# table values (the check below the strict one).
PENDING = '> **Status ('


def test_the_answer_cites_its_cells():
    section = _first_section((REPO / 'docs' / 'qkv.md').read_text())
    if section.lstrip().startswith(PENDING):
        pytest.skip('docs/qkv.md: the first section awaits the rewrite '
                    'from the declared tables (its status note)')
    assert len(CITATION.findall(section)) >= 5, 'the answer cites no cells'
    assert problems(section, read_tables(REPO)) == []


def test_every_number_of_the_answer_is_in_a_published_table():
    section = _first_section((REPO / 'docs' / 'qkv.md').read_text())
    numbers = re.findall(r'(?<![\w.])[-+−]?\d+\.\d+', section)
    assert len(numbers) >= 5, 'the answer should cite the tables'
    values = []
    for table in read_tables(REPO).values():
        for row in table.values():
            for field in row.values():
                for token in re.split(r'[\s:;]+', field or ''):
                    try:
                        values.append(float(token))
                    except ValueError:
                        pass
    missing = [text for text in numbers if not any(
        _same(text, v) for v in values)]
    assert missing == [], f'not in {TABLES}: {missing}'


# The checker itself, on a two-row table.
_TABLE = {'t.csv': {
    'cyclic/a': {'row': 'cyclic/a', 'test_miou_mean': '94.25',
                 'test_miou_per_seed': '0:99.10 1:48.02',
                 'p_mcnemar_holm': '0.0312', 'test_possible': 'True'},
    'cyclic/b': {'row': 'cyclic/b', 'test_miou_mean': '50.0',
                 'p_mcnemar_holm': '0.41', 'test_possible': 'True'},
    'cyclic/c': {'row': 'cyclic/c', 'p_signflip_holm': '1.0',
                 'test_possible': 'False'},
}}


@pytest.mark.parametrize('text, expected', [
    ('It reached 94.2 [t.csv: cyclic/a, test_miou_mean].', []),
    ('It reached 94.3 [t.csv: cyclic/a, test_miou_mean].', ['94.3']),
    ('Seed 1 reached 48.0 mIoU [t.csv: cyclic/a, test_miou_per_seed@1].',
     []),
    ('It reached 94.2 against 50.0 [t.csv: cyclic/b, test_miou_mean].',
     ['94.2: no citation']),
    ('It reached 94.2 [t.csv: cyclic/z, test_miou_mean].', ['no such']),
    ('A trailed significantly (p 0.031 [t.csv: cyclic/a, p_mcnemar_holm]).',
     []),
    ('B trailed significantly (p 0.41 [t.csv: cyclic/b, p_mcnemar_holm]).',
     ['says significant']),
    ('B did not differ (p 0.41 [t.csv: cyclic/b, p_mcnemar_holm]).', []),
    ('A did not differ (p 0.031 [t.csv: cyclic/a, p_mcnemar_holm]).',
     ['says no difference']),
    ('C did not differ (p 1.0 [t.csv: cyclic/c, p_signflip_holm]).',
     ['says no difference']),
    ('B was not significantly worse.', ['says no difference']),
    ('A trailed significantly.', ['says significant']),
    ('The config `x_1.5e` and 12 seeds need no citation.', []),
])
def test_citation_checker(text, expected):
    found = problems(text, _TABLE)
    assert len(found) == len(expected), found
    for problem, want in zip(found, expected):
        assert want in problem
