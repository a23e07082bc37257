"""The seams between modules: no module reaches into another's private names, and the package passes ruff."""
import ast, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT/'landmarks'
MODULES = sorted(p for p in PKG.glob('*.py') if p.name != '_modidx.py')
RUFF = ['check', '--select', 'E501,E702,E703,F401', '--line-length', '120']


def _private(name:str) -> bool: return name.startswith('_') and not name.startswith('__')


def _target(node:ast.ImportFrom, here:str):
    "The landmarks module an import-from reads (None: another package); `''` is the package itself."
    if node.level == 1: return node.module or ''
    if node.level == 0 and node.module and (node.module == 'landmarks' or node.module.startswith('landmarks.')):
        return node.module[len('landmarks.'):] if '.' in node.module else ''
    return None


def private_uses(src:str, here:str) -> list:
    "(line, text) of every use of another landmarks module's private name in module `here`'s source."
    tree, found, aliases = ast.parse(src), [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (mod := _target(node, here)) is not None:
            for a in node.names:
                if mod == '':                                  # from landmarks import delf (a module)
                    aliases[a.asname or a.name] = a.name
                    if _private(a.name) and a.name != here: found.append((node.lineno, f'import {a.name}'))
                elif mod != here and _private(a.name): found.append((node.lineno, f'{mod}.{a.name}'))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith('landmarks.') and a.asname: aliases[a.asname] = a.name.split('.', 1)[1]
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and _private(node.attr)): continue
        v = node.value
        if isinstance(v, ast.Name) and aliases.get(v.id, here) != here:
            found.append((node.lineno, f'{aliases[v.id]}.{node.attr}'))
        elif isinstance(v, ast.Attribute) and isinstance(v.value, ast.Name) and v.value.id == 'landmarks' \
                and v.attr != here:
            found.append((node.lineno, f'{v.attr}.{node.attr}'))
    return found


def test_checker_finds_private_uses():
    src = ('from .delf import _same, FIELDS\nfrom landmarks.kdtree import _project\nfrom landmarks import pca\n'
           'import landmarks.scale as s\nimport landmarks\npca._files(1)\ns._x()\nlandmarks.delf._atomic\n'
           'from .data import atomic_path\nfrom .organize import _own\n')
    assert sorted(t for _, t in private_uses(src, 'organize')) == [
        'delf._atomic', 'delf._same', 'kdtree._project', 'pca._files', 'scale._x']


@pytest.mark.parametrize('path', MODULES, ids=lambda p: p.name)
def test_no_module_imports_another_modules_private_name(path):
    uses = private_uses(path.read_text(), path.stem)
    assert not uses, f'{path.name}: ' + '; '.join(f'line {n}: {t}' for n, t in uses) + ' (make the helper public)'


def _ruff():
    exe = Path(sys.executable).parent/'ruff'
    return str(exe) if exe.exists() else shutil.which('ruff')


@pytest.mark.skipif(_ruff() is None, reason='ruff is not installed (pip install -r requirements.txt)')
def test_package_passes_ruff():
    r = subprocess.run([_ruff(), *RUFF, 'landmarks/'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-1000:]
