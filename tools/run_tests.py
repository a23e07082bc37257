"""Run every test of the project: ruff over landmarks/, benchmarks/, tools/ and tests/, `nbdev_test` over nbs/,
pytest over tests/ and the gld profile's rehearsal (`landmarks report --profile gld-mini`, then
tools/check_rehearsal.py: `make rehearse`), then print one `N passed, N failed` line that counts them all (ruff,
each notebook and the rehearsal count one test each). REHEARSE=0 leaves the rehearsal out (a quicker local run)."""
import os, re, subprocess, sys, tempfile, time
import xml.etree.ElementTree as ET
from pathlib import Path

root = Path(__file__).resolve().parents[1]
bindir = Path(sys.executable).parent
env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}", MPLBACKEND='Agg',
           TF_CPP_MIN_LOG_LEVEL='2', PYTHONHASHSEED='0')

def tee(cmd):
    "Run `cmd`, echo its output, return (returncode, output)."
    p = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    for line in p.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        out.append(line)
    return p.wait(), ''.join(out)

t0 = time.time()
LINT = ['--select', 'E501,E702,E703,F401', '--line-length', '120',
        'landmarks/', 'benchmarks/', 'tools/', 'tests/']   # also `make lint`
rc_lint, _ = tee([str(bindir/'ruff'), 'check', *LINT])
lint_failed = int(rc_lint != 0)
if lint_failed:
    print('ruff: failed (in landmarks/: fix the notebooks, then `make export`, which runs the nbdev that '
          '`make install` patched; in benchmarks/, tools/ or tests/: fix the file itself)')
print(f'ruff: {1 - lint_failed} passed, {lint_failed} failed', flush=True)

workers = os.environ.get('NBDEV_WORKERS', '2')
rc_nb, out = tee([str(bindir/'nbdev_test'), '--do_print', '--timing', '--n_workers', workers])
started = set(re.findall(r'Starting (\S+?\.ipynb)', out))   # parallel workers can print two on one line
failed_nbs = []
if 'nbdev Tests Failed On The Following Notebooks:' in out:
    tail = out.split('nbdev Tests Failed On The Following Notebooks:', 1)[1]
    failed_nbs = re.findall(r'^\t+(\S+\.ipynb)\s*$', tail, flags=re.M)
if rc_nb != 0 and not failed_nbs: failed_nbs = ['nbdev_test (exit %d)' % rc_nb]
nb_passed, nb_failed = len(started) - len(failed_nbs), len(failed_nbs)
print(f'notebooks: {nb_passed} passed, {nb_failed} failed in {time.time()-t0:.0f}s', flush=True)

with tempfile.TemporaryDirectory() as d:
    xml = Path(d)/'pytest.xml'
    rc_py, _ = tee([sys.executable, '-m', 'pytest', 'tests', '-q', '-p', 'no:cacheprovider', f'--junitxml={xml}'])
    py_total = py_fail = py_skip = 0
    if xml.exists():
        for s in ET.parse(xml).getroot().iter('testsuite'):
            py_total += int(s.get('tests', 0))
            py_skip += int(s.get('skipped', 0))
            py_fail += int(s.get('failures', 0)) + int(s.get('errors', 0))
if rc_py not in (0, 5) and py_fail == 0: py_fail = 1   # pytest itself broke (collection, usage)
rehearse = os.environ.get('REHEARSE', '1') != '0'
rehearse_failed = 0
if rehearse:
    rc_a, _ = tee([sys.executable, '-m', 'landmarks.cli', 'report', '--profile', 'gld-mini'])
    rc_b, _ = tee([sys.executable, 'tools/check_rehearsal.py', 'reports/gld-mini']) if rc_a == 0 else (1, '')
    rehearse_failed = int(rc_b != 0)
passed = 1 - lint_failed + nb_passed + py_total - py_fail - py_skip + int(rehearse) - rehearse_failed
failed = lint_failed + nb_failed + py_fail + rehearse_failed
if failed_nbs: print('failed notebooks: ' + ', '.join(failed_nbs))
if lint_failed:
    print('failed: ruff check landmarks/ benchmarks/ tools/ tests/')
if rehearse_failed:
    print('failed: the gld-mini rehearsal (make rehearse)')
print(f'total time {time.time()-t0:.0f}s')
print(f'{passed} passed, {failed} failed' + (f', {py_skip} skipped' if py_skip else ''))
sys.exit(1 if failed else 0)
