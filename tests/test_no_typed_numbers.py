"""No result table is typed into a notebook's markdown: numbers come from code, or from a committed CSV under
benchmarks/results/ that names the command which made it."""
import json, re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DECIMAL = re.compile(r'(?<![\w.])\d[\d,]*\.\d+(?![\w.])')   # 0.957, 1,276.5; not v1.2.3 or file.csv
# hand-computed metric fixtures (inputs and the arithmetic a test cell below checks), not results: (notebook, marker)
FIXTURES = {('08_evaluation.ipynb', '**Fixture 1** is the organisers\' own'),
            ('08_evaluation.ipynb', '**Fixture 3** is the organisers\' retrieval case')}


def typed_rows(nb_path) -> list:
    "(cell number, line) of every markdown table row of `nb_path` holding two or more decimal numbers."
    cells = json.loads(Path(nb_path).read_text())['cells']
    fixture = lambda c: any(Path(nb_path).name == n and m in ''.join(c['source']) for n, m in FIXTURES)
    return [(i, line) for i, c in enumerate(cells) if c['cell_type'] == 'markdown' and not fixture(c)
            for line in ''.join(c['source']).splitlines()
            if line.lstrip().startswith('|') and len(DECIMAL.findall(line)) >= 2]


def test_the_scan_finds_a_typed_table_and_passes_prose(tmp_path):
    table = ['| method | mAP |\n', '|---|---|\n', '| a | 0.357 | 0.90 |\n']
    nb = {'cells': [{'cell_type': 'markdown', 'source': table},
                    {'cell_type': 'markdown', 'source': ['PCA 1024 -> 40 -> 10, thresholds 0.8 and 0.6.\n']},
                    {'cell_type': 'code', 'source': ['| 0.1 | 0.2 |']}]}
    (tmp_path/'x.ipynb').write_text(json.dumps(nb))
    assert typed_rows(tmp_path/'x.ipynb') == [(0, '| a | 0.357 | 0.90 |')]


@pytest.mark.parametrize('nb', sorted((ROOT/'nbs').glob('*.ipynb')), ids=lambda p: p.name)
def test_no_markdown_cell_retypes_a_result_table(nb):
    rows = typed_rows(nb)
    assert not rows, (f'{nb.name}: markdown cell {rows[0][0]} types in a result table ({rows[0][1]!r}); compute it '
                      'in a code cell, or read a CSV under benchmarks/results/ that names the command which made it')
