"""The written answer cites measured numbers: every decimal number in the
first section of docs/qkv.md is a value of the published study tables."""
import csv
import re

from .helpers import REPO

TABLES = ('benchmarks/study.csv', 'benchmarks/study-full.csv')


def _csv_values():
    values = []
    for name in TABLES:
        with open(REPO / name) as file:
            for row in csv.reader(file):
                for field in row:
                    for token in re.split(r'[\s:;]+', field):
                        try:
                            values.append(float(token))
                        except ValueError:
                            pass
    return values


def _first_section(text: str) -> str:
    body = text.split('\n', 1)[1]  # after the title
    return body.split('\n## ', 1)[0]


def test_every_number_of_the_answer_is_in_a_published_table():
    section = _first_section((REPO / 'docs' / 'qkv.md').read_text())
    numbers = re.findall(r'(?<![\w.])[-+−]?\d+\.\d+', section)
    assert len(numbers) >= 5, 'the answer should cite the tables'
    values = _csv_values()
    missing = []
    for text in numbers:
        number = float(text.replace('−', '-'))
        decimals = len(text.split('.')[1])
        if not any(round(v, decimals) == round(number, decimals)
                   or round(abs(v), decimals) == round(abs(number), decimals)
                   for v in values):
            missing.append(text)
    assert missing == [], f'not in {TABLES}: {missing}'
