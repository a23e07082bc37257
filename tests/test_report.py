"""The report runner: the whole smoke profile, located failures, and reruns of only the stages that changed."""
import json, os, re, subprocess, sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from landmarks.report import figure_caption
from landmarks.runner import (TIMING_COLUMNS, StageFailed, check_profile, load_profiles, notebook_parameters, repo_root,
                              run_report, stages)

ROOT = Path(__file__).resolve().parents[1]
os.environ['PATH'] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get('PATH', '')


def _nb(path, params:str, body:str):
    nb = nbformat.v4.new_notebook()
    nb.metadata['kernelspec'] = {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'}
    p = nbformat.v4.new_code_cell(params)
    p.metadata['tags'] = ['parameters']
    nb.cells = [p, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, str(path))


@pytest.fixture
def mini(tmp_path):
    "Three stages writing files, with a profiles file; the last reads from the two before it."
    nbs = tmp_path/'nbs'
    nbs.mkdir()
    _nb(nbs/'00_a.ipynb', 'out_dir = "."\nalpha = 1', 'open(f"{out_dir}/a.txt", "a").write(f"{alpha}\\n")')
    _nb(nbs/'01_b.ipynb', 'out_dir = "."\nbeta = 1', 'open(f"{out_dir}/b.txt", "a").write(f"{beta}\\n")')
    _nb(nbs/'02_c.ipynb', 'out_dir = "."\ngamma = 1', 'open(f"{out_dir}/c.txt", "a").write(f"{gamma}\\n")')
    prof = tmp_path/'profiles.toml'
    prof.write_text('[t]\nalpha = 2\nbeta = 3\ngamma = 4\n')
    return nbs, prof, tmp_path/'out'


def _runs(out):
    return {n: len((out/f'{n}.txt').read_text().split()) for n in 'abc'}


def test_changing_one_parameter_reruns_only_the_stages_that_depend_on_it(mini):
    nbs, prof, out = mini
    kw = dict(out=out, profiles=prof, nbs_dir=nbs, html=False, log=lambda *a: None)
    run_report('t', **kw)
    assert _runs(out) == {'a': 1, 'b': 1, 'c': 1}
    assert (out/'c.txt').read_text() == '4\n'                  # the profile's value was injected
    run_report('t', **kw)
    assert _runs(out) == {'a': 1, 'b': 1, 'c': 1}              # all up to date
    prof.write_text('[t]\nalpha = 2\nbeta = 3\ngamma = 5\n')
    run_report('t', **kw)
    assert _runs(out) == {'a': 1, 'b': 1, 'c': 2}              # gamma is 02_c's alone
    prof.write_text('[t]\nalpha = 2\nbeta = 7\ngamma = 5\n')
    run_report('t', **kw)
    assert _runs(out) == {'a': 1, 'b': 2, 'c': 3}              # 02_c reads what 01_b wrote


def test_every_run_writes_its_stage_timings(mini):
    nbs, prof, out = mini
    kw = dict(out=out, profiles=prof, nbs_dir=nbs, html=False, log=lambda *a: None)
    run_report('t', **kw)
    first = pd.read_csv(out/'timings.csv')
    assert list(first.columns) == TIMING_COLUMNS and list(first.stage) == ['00_a', '01_b', '02_c']
    assert not first.skipped.any() and (first.seconds > 0).all() and (first.threads >= 1).all()
    assert first.cpu_model.str.len().gt(0).all()
    prof.write_text('[t]\nalpha = 2\nbeta = 3\ngamma = 5\n')
    run_report('t', **kw)
    second = pd.read_csv(out/'timings.csv')
    assert list(second.skipped) == [True, True, False]                  # 02_c reran, the others were reused
    assert list(second.seconds[:2]) == list(first.seconds[:2])         # a reused stage keeps the time that made it


def test_stages_follow_their_names_with_the_report_last_and_the_runner_out(tmp_path):
    for name in ['00_a', '07_b', '07c_c', '08a_d', '09_report', '10_e', '90_runner']:
        extra = '\nreport_stage = False' if name == '90_runner' else ''
        _nb(tmp_path/f'{name}.ipynb', f'out_dir = "."{extra}', 'pass')
    _nb(tmp_path/'99_cli.ipynb', 'x = 1', 'pass')
    (tmp_path/'99_cli.ipynb').write_text((tmp_path/'99_cli.ipynb').read_text().replace('"parameters"', '"other"'))
    assert [p.stem for p in stages(tmp_path)] == ['00_a', '07_b', '07c_c', '08a_d', '10_e', '09_report']
    shipped = [p.stem for p in stages()]
    assert shipped[-1] == '09_report' and '90_runner' not in shipped and '99_cli' not in shipped


def _cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, '-m', 'landmarks.cli', 'report', *args], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, 'PYTHONPATH': str(ROOT)})


def test_report_refuses_an_unknown_profile_or_stage_in_one_line_and_makes_nothing(tmp_path):
    bad = ((['--profile', 'nosuch'], "profile='nosuch': not in"),
           (['--profile', 'smoke', '--only', '05_kdtre'], '05_kdtre'))
    for args, says in bad:
        r = _cli(*args, '--out', str(tmp_path/'out'))
        assert r.returncode == 2, r
        assert says in r.stderr and len(r.stderr.strip().splitlines()) == 1 and 'Traceback' not in r.stderr, r.stderr
        assert not (tmp_path/'out').exists()


def test_report_prints_the_parameters_a_stage_gets_for_papermill(tmp_path):
    r = _cli('--profile', 'cpu', '--params', '04_pca', '--out', str(tmp_path/'out'))
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    assert p['profile'] == 'cpu' and p['out_dir'] == str(tmp_path/'out') and p['features'] == 'delf_features'
    assert not (tmp_path/'out').exists()


def test_a_failing_notebook_stops_the_run_naming_notebook_cell_and_error(mini):
    nbs, prof, out = mini
    _nb(nbs/'01_b.ipynb', 'out_dir = "."\nbeta = 1', 'raise ValueError("bad beta")')
    with pytest.raises(StageFailed, match=r"01_b\.ipynb: cell \d+ .*ValueError: bad beta"):
        run_report('t', out=out, profiles=prof, nbs_dir=nbs, html=False, log=lambda *a: None)
    assert (out/'a.txt').exists() and not (out/'c.txt').exists()   # stopped at the failure, earlier work kept
    assert (out/'.stamps'/'00_a.json').exists() and not (out/'.stamps'/'01_b.json').exists()


def test_a_misspelt_profile_key_or_section_stops_before_any_stage_runs(mini):
    nbs, prof, out = mini
    kw = dict(out=out, profiles=prof, nbs_dir=nbs, html=False, log=lambda *a: None)
    prof.write_text('[t]\nalpha = 2\n[t."01_b"]\nbeta = 3\nbeat = 4\n')
    with pytest.raises(ValueError, match=(r'profiles.toml: \[t."01_b"\] sets beat, '
                                          r'not a parameter of 01_b \(it declares out_dir, beta\)')):
        run_report('t', **kw)
    assert not (out/'a.txt').exists()                             # nothing ran
    prof.write_text('[t]\nalpha = 2\n[t."01_bb"]\nbeta = 3\n')
    with pytest.raises(ValueError, match=r'section \[t."01_bb"\] names no notebook'): run_report('t', **kw)
    prof.write_text('[t]\nalpha = 2\n[t."01_b"]\nbeta = 3\n')   # [t] keys a notebook lacks are fine: alpha is 00_a's
    run_report('t', **kw)
    assert _runs(out) == {'a': 1, 'b': 1, 'c': 1} and (out/'b.txt').read_text() == '3\n'


def test_declared_inputs_order_the_stages_and_decide_what_reruns(mini):
    nbs, prof, out = mini
    _nb(nbs/'01_b.ipynb', 'out_dir = "."\nbeta = 1\ninputs = ["02_c"]',
        'open(f"{out_dir}/b.txt", "a").write(f"{beta}\\n")')
    _nb(nbs/'02_c.ipynb', 'out_dir = "."\ngamma = 1\ninputs = []', 'open(f"{out_dir}/c.txt", "a").write(f"{gamma}\\n")')
    assert [p.stem for p in stages(nbs)] == ['00_a', '02_c', '01_b']          # 01_b reads 02_c: 02_c runs first
    kw = dict(out=out, profiles=prof, nbs_dir=nbs, html=False, log=lambda *a: None)
    run_report('t', **kw)
    prof.write_text('[t]\nalpha = 5\nbeta = 3\ngamma = 4\n')
    run_report('t', **kw)
    assert _runs(out) == {'a': 2, 'b': 1, 'c': 1}              # neither declares 00_a: alpha reruns 00_a alone
    prof.write_text('[t]\nalpha = 5\nbeta = 3\ngamma = 6\n')
    run_report('t', **kw)
    assert _runs(out) == {'a': 2, 'b': 2, 'c': 2}              # 01_b declares 02_c
    _nb(nbs/'02_c.ipynb', 'out_dir = "."\ngamma = 1\ninputs = ["00_x"]', 'pass')
    with pytest.raises(ValueError, match=r"02_c.ipynb: inputs \['00_x'\] are not stages"):
        stages(nbs)


def test_a_stage_input_named_in_a_profile_must_come_from_an_earlier_stage(mini):
    nbs, prof, out = mini
    _nb(nbs/'00_a.ipynb', 'out_dir = "."\nalpha = 1\nfeatures = None', 'pass')
    prof.write_text('[t]\nfeatures = "delf_features"\n')                  # 03_delf's store: no such stage here
    with pytest.raises(ValueError, match=r"00_a.ipynb: its parameters name files \['03_delf'\] write"):
        run_report('t', out=out, profiles=prof, nbs_dir=nbs, html=False, log=lambda *a: None)
    assert not out.exists()


def test_profiles_hold_no_paths_into_reports():
    text = (ROOT/'profiles.toml').read_text()
    assert 'reports/' not in text.replace('# No paths into reports/', ''), 'name a stage input (ARTIFACTS) instead'


def test_the_shipped_profiles_name_only_declared_parameters():
    profs, nbs = load_profiles(), stages(repo_root()/'nbs')
    for p in profs: check_profile(profs, p, nbs)


def test_every_notebook_keeps_its_parameters_tag_and_kernelspec():
    for nb in sorted((ROOT/'nbs').glob('[0-9][0-9]*.ipynb')):
        if nb.stem == '99_cli': continue
        p = notebook_parameters(nb)
        assert p is not None, f'{nb.name}: no cell tagged parameters'
        for k in ('profile', 'dataset', 'data_dir', 'out_dir', 'seed'):
            assert k in p, f'{nb.name}: parameter {k} missing'
        assert json.loads(nb.read_text())['metadata']['kernelspec']['name'] == 'python3', nb.name


def test_profiles_define_smoke_cpu_gld():
    profs = load_profiles()
    assert {'smoke', 'cpu', 'gld'} <= set(profs)


@pytest.mark.skipif(os.environ.get('LANDMARKS_SKIP_SMOKE_REPORT') == '1', reason='smoke report disabled')
def test_smoke_profile_of_the_whole_report(tmp_path):
    "The runner end to end on the smoke profile: every stage, the tables, the HTML report; nothing under reports/."
    reports = ROOT/'reports'
    before = {p: p.stat().st_mtime_ns for p in reports.rglob('*')} if reports.exists() else {}
    out = run_report('smoke', out=tmp_path/'smoke', log=print)
    after = {p: p.stat().st_mtime_ns for p in reports.rglob('*')} if reports.exists() else {}
    assert after == before, (
        f'--out elsewhere wrote under reports/: {sorted(set(after.items()) - set(before.items()))[:5]}')
    names = [p.stem for p in stages()]
    for n in names: assert (out/f'{n}.ipynb').exists(), n
    assert (out/'report.html').exists() and (out/'report.html').stat().st_size > 10_000
    t1 = pd.read_csv(out/'tables'/'table1_recognition.csv')
    assert list(zip(t1.model.str.lower(), t1['mode'])) == [('resnet18', 'frozen'), ('resnet50', 'frozen'),
                                                           ('resnet50', 'finetune')]
    assert {'train_acc', 'test_acc', 'gap', 'train_acc_2018', 'test_acc_2018'} <= set(t1.columns)
    assert t1.test_acc.between(0, 1).all() and t1.gap.between(0, 1).all()
    t2 = pd.read_csv(out/'tables'/'table2_retrieval.csv')
    assert {'Random', 'PCA-10 KD-tree', 'PCA-10 KD-tree tuned', 'PCA-40 IVF-PQ + RANSAC'} <= set(t2.method)
    assert {'map100', 'query_ms', 'bytes_per_feature', 'map100_2018'} <= set(t2.columns)
    assert t2.map100.between(0, 1).all()
    for fig in ('figure1_good.png', 'figure1_spurious.png', 'synth_samples.png', 'table2_map_vs_time.png'):
        assert (out/'figures'/fig).stat().st_size > 1000, fig
    tim = pd.read_csv(out/'timings.csv')
    assert list(tim.columns) == TIMING_COLUMNS and list(tim.stage) == names
    assert not tim.skipped.any() and (tim.seconds > 0).all()
    html = (out/'report.html').read_text()
    text = re.sub(r'<style.*?</style>|<script.*?</script>|<[^>]+>', ' ', html, flags=re.S)
    warning = re.search(r'.{0,80}\w*(Warning|Error|Traceback)\b.{0,80}', text, re.S)
    assert not warning, warning.group()
    assert text.index('Abstract') < text.index('Table 1.') < text.index('Table 2.') < text.index('papermill')
    assert 'ms / query' in text and 'mAP@100' in text and '>weights<' not in html   # the weights are in the caption
    for fig in (out/'figures').glob('*.png'):                       # every figure has a caption, shown under it
        caption = figure_caption(fig.stem)                             # a KeyError names a figure without one
        assert caption[:40] in text.replace('&#x27;', "'"), fig.stem


def test_papermills_false_parse_warnings_are_dropped(tmp_path, caplog):
    "papermill cannot parse `spec = \"a=b\"` and then calls `spec` unknown; the runner has checked the names itself."
    nbs = tmp_path/'nbs'
    nbs.mkdir()
    _nb(nbs/'00_a.ipynb', 'out_dir = "."\nspec = "synth:tiny,seed=1"   # key=value pairs',
        'open(f"{out_dir}/a.txt", "w").write(spec)')
    prof = tmp_path/'profiles.toml'
    prof.write_text('[t]\nspec = "synth:tiny,seed=2"\n')
    with caplog.at_level('INFO'):
        run_report('t', out=tmp_path/'out', profiles=prof, nbs_dir=nbs, html=False, log=lambda *a: None)
    assert (tmp_path/'out'/'a.txt').read_text() == 'synth:tiny,seed=2'       # injected all the same
    assert not [r for r in caplog.records
                if 'Unable to parse' in r.getMessage() or 'unknown parameter' in r.getMessage()]
    assert [r for r in caplog.records if r.name.startswith('papermill')]     # papermill's other messages still pass


def test_a_profile_that_extends_another_gets_its_keys_and_overrides_them_key_by_key(mini):
    nbs, prof, out = mini
    prof.write_text('[base]\nalpha = 2\nbeta = 3\n[base."02_c"]\ngamma = 4\n'
                    '[over]\nextends = "base"\nbeta = 30\n[over."02_c"]\n')
    profs = load_profiles(prof)
    assert profs['over'] == {'alpha': 2, 'beta': 30, '02_c': {'gamma': 4}}      # `extends` itself is resolved away
    run_report('over', out=out, profiles=prof, nbs_dir=nbs, html=False, log=lambda *a: None)
    assert [(out/f'{n}.txt').read_text() for n in 'abc'] == ['2\n', '30\n', '4\n']
    prof.write_text(prof.read_text().replace('gamma = 4', 'gamma = 5'))         # a key added to (changed in) the base
    run_report('over', out=out, profiles=prof, nbs_dir=nbs, html=False, log=lambda *a: None)
    assert (out/'c.txt').read_text() == '4\n5\n' and _runs(out) == {'a': 1, 'b': 1, 'c': 2}


def test_an_unknown_base_profile_or_a_cycle_is_refused_naming_the_file(tmp_path):
    prof = tmp_path/'profiles.toml'
    prof.write_text('[a]\nextends = "gld2"\n[gld]\nx = 1\n')
    with pytest.raises(ValueError, match=r"profiles.toml: \[a\] extends = 'gld2': not a profile there \(a, gld\)"):
        load_profiles(prof)
    prof.write_text('[a]\nextends = "b"\n[b]\nextends = "a"\n')
    with pytest.raises(ValueError, match=r'a cycle \(a -> b -> a\)'): load_profiles(prof)


def test_prepare_commands_run_first_in_nbs_and_are_timed(mini):
    nbs, prof, out = mini
    prof.write_text('[t]\nalpha = 2\nprepare = ["python -c \\"open(\'alpha.txt\', \'w\').write(\'ready\')\\""]\n')
    run_report('t', out=out, profiles=prof, nbs_dir=nbs, html=False, log=lambda *a: None)
    assert (nbs/'alpha.txt').read_text() == 'ready'
    tim = pd.read_csv(out/'timings.csv')
    assert list(tim.stage) == ['prepare', '00_a', '01_b', '02_c'] and not tim.skipped.any()
    prof.write_text('[t]\nprepare = ["python -c \\"raise SystemExit(4)\\""]\n')
    with pytest.raises(StageFailed, match=r'prepare: `python -c "raise SystemExit\(4\)"` .* exited with status 4'):
        run_report('t', out=out.with_name('out2'), profiles=prof, nbs_dir=nbs, html=False, log=lambda *a: None)


def test_gld_mini_is_gld_but_for_the_keys_it_overrides():
    "Every key of [gld] (and of its sections) reaches gld-mini unless gld-mini sets it itself."
    import tomllib
    raw = tomllib.loads((ROOT/'profiles.toml').read_text())
    assert raw['gld-mini']['extends'] == 'gld'
    mini = load_profiles()['gld-mini']
    for k, v in raw['gld'].items():
        if not isinstance(v, dict):
            assert mini[k] == raw['gld-mini'].get(k, v), k
            continue
        for kk, vv in v.items(): assert mini[k][kk] == raw['gld-mini'].get(k, {}).get(kk, vv), (k, kk)
    assert mini['03_delf']['scales'] == raw['gld']['03_delf']['scales'] and len(mini['03_delf']['scales']) == 7
    assert mini['07a_retrieval']['index_type'] == 'ivfpq' and mini['02_transfer']['weights'] == 'imagenet'
    assert any('landmarks download gld-v2-mirror' in c for c in mini['prepare'])
