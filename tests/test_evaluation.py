"""Property-based tests of landmarks.evaluation against independent reference computations (numpy, sklearn,
the formulas written out) and invariances; the CLI on CSV files."""
import landmarks  # noqa: F401  (first: import order with tensorflow)
import math, os, pickle, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from sklearn.metrics import average_precision_score

from landmarks.evaluation import (accuracy, evaluate, global_average_precision, mean_average_precision,
                                  mean_precision_at_k, read_solution, read_submission, write_recognition_submission,
                                  write_retrieval_submission)

ROOT = Path(__file__).resolve().parents[1]
settings.register_profile('landmarks', max_examples=60, deadline=None)
settings.load_profile('landmarks')

# ---------------------------------------------------------------- strategies
hex_id = st.text('0123456789abcdef', min_size=4, max_size=8)

@st.composite
def recognition_case(draw, min_images=1, max_images=25):
    "A recognition solution (some non-landmark images) and one-per-image predictions with tied scores likely."
    ids = draw(st.lists(hex_id, min_size=min_images, max_size=max_images, unique=True))
    solution = {i: draw(st.sets(st.integers(0, 5), max_size=2)) for i in ids}
    score = st.one_of(st.integers(0, 4).map(float), st.floats(-10, 10, allow_nan=False))
    predicted = draw(st.lists(st.sampled_from(ids), unique=True)) if ids else []
    predictions = {i: (draw(st.integers(0, 6)), draw(score)) for i in predicted}
    return predictions, solution

@st.composite
def retrieval_case(draw, max_queries=12, pool=15):
    "A retrieval solution (some empty = unscored queries) and ranked lists with duplicates likely."
    index = [f'x{n}' for n in range(pool)]
    qs = draw(st.lists(hex_id, min_size=1, max_size=max_queries, unique=True))
    solution = {q: draw(st.sets(st.sampled_from(index), max_size=6)) for q in qs}
    predicted = draw(st.lists(st.sampled_from(qs), unique=True))
    predictions = {q: draw(st.lists(st.sampled_from(index), max_size=20)) for q in predicted}
    return predictions, solution

# ---------------------------------------------------------------- independent references
def ref_gap(predictions, solution):
    "GAP with numpy: lexicographic sort (score desc, id asc, landmark asc), cumulative precision at the hits."
    m = sum(bool(v) for v in solution.values())
    if not predictions: return 0.0
    ids = sorted(predictions)
    id_rank = np.array([ids.index(i) for i in predictions])
    lms = np.array([p[0] for p in predictions.values()])
    scores = np.array([p[1] for p in predictions.values()], dtype=float)
    order = np.lexsort((lms, id_rank, -scores))
    rel = np.array([p[0] in solution[i] for i, p in predictions.items()], dtype=float)[order]
    precision = np.cumsum(rel) / np.arange(1, len(rel) + 1)
    return float((precision * rel).sum() / m)

def ref_ap(ranked, relevant, k):
    "AP@k as the challenge formula reads: rel(r) = 1 for the first occurrence of a relevant id within the first k."
    ranked = list(ranked)[:k]
    rel = [int(p in relevant and p not in ranked[:r]) for r, p in enumerate(ranked)]
    return sum(sum(rel[:r + 1]) / (r + 1) * rel[r] for r in range(len(ranked))) / min(len(relevant), k)

def ref_map(predictions, solution, k):
    scored = [q for q, v in solution.items() if v]
    return sum(ref_ap(predictions.get(q, []), solution[q], k) for q in scored) / len(scored)

# ---------------------------------------------------------------- GAP
@given(recognition_case())
def test_gap_matches_numpy_reference(case):
    predictions, solution = case
    assume(any(solution.values()))
    assert global_average_precision(predictions, solution) == pytest.approx(ref_gap(predictions, solution), abs=1e-12)

@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=30), st.randoms())
def test_gap_matches_sklearn_average_precision(pairs, rnd):
    # Every image has a landmark and a prediction, scores distinct: GAP * M = sklearn AP * (number correct).
    scores = rnd.sample(range(1000), len(pairs))
    solution = {f'{n:04x}': {t} for n, (t, _) in enumerate(pairs)}
    predictions = {f'{n:04x}': (p, float(s)) for n, ((_, p), s) in enumerate(zip(pairs, scores))}
    y = np.array([t == p for t, p in pairs])
    assume(y.any())
    expected = average_precision_score(y, scores) * y.sum() / len(pairs)
    assert global_average_precision(predictions, solution) == pytest.approx(expected, abs=1e-12)

@given(recognition_case(), st.randoms())
def test_gap_ignores_dict_order(case, rnd):
    predictions, solution = case
    assume(any(solution.values()))
    items = list(predictions.items())
    rnd.shuffle(items)
    sol = list(solution.items())
    rnd.shuffle(sol)
    assert global_average_precision(dict(items), dict(sol)) == global_average_precision(predictions, solution)

@given(recognition_case())
def test_gap_bounded_by_accuracy(case):
    predictions, solution = case
    assume(any(solution.values()))
    gap, acc = global_average_precision(predictions, solution), accuracy(predictions, solution)
    assert 0.0 <= gap <= acc + 1e-12 <= 1.0 + 1e-12
    # ranking every correct prediction above every wrong one reaches the bound
    ordered = {i: (lm, s + 100.0 if lm in solution[i] else s - 100.0) for i, (lm, s) in predictions.items()}
    assert global_average_precision(ordered, solution) == pytest.approx(acc, abs=1e-12)

@given(recognition_case())
def test_gap_false_positive_on_non_landmark_image(case):
    predictions, solution = case
    assume(any(solution.values()))
    solution = {**solution, 'ffffffffff': set()}     # a non-landmark image (ids are at most 8 characters long)
    base = global_average_precision(predictions, solution)
    low = {**predictions, 'ffffffffff': (0, -1e9)}   # ranked last: no correct prediction moves
    high = {**predictions, 'ffffffffff': (0, 1e9)}   # ranked first: every correct prediction drops one rank
    assert global_average_precision(low, solution) == pytest.approx(base, abs=1e-12)
    if base > 0: assert global_average_precision(high, solution) < base

@given(recognition_case())
def test_gap_perfect_predictions(case):
    _, solution = case
    assume(any(solution.values()))
    perfect = {i: (min(v), 1.0) for i, v in solution.items() if v}
    assert global_average_precision(perfect, solution) == 1.0
    assert accuracy(perfect, solution) == 1.0

def test_accuracy_ignores_non_landmark_images():
    solution = {'a': {1}, 'b': {2}, 'n': set()}
    assert accuracy({'a': (1, 0.9), 'n': (5, 0.99)}, solution) == 0.5
    assert accuracy({'a': (1, 0.9)}, solution) == accuracy({'a': (1, 0.9), 'n': (3, 0.1)}, solution)

# ---------------------------------------------------------------- mAP@k and precision@k
@given(retrieval_case(), st.integers(1, 25))
def test_map_matches_formula(case, k):
    predictions, solution = case
    assume(any(solution.values()))
    assert mean_average_precision(predictions, solution, k) == pytest.approx(ref_map(predictions, solution, k),
                                                                             abs=1e-12)

@given(st.permutations([f'x{n}' for n in range(12)]), st.sets(st.integers(0, 11), min_size=1, max_size=6))
def test_ap_matches_sklearn_without_duplicates(ranking, positions):
    # All relevant ids within the list, no duplicates, |relevant| <= k: AP@k is sklearn's AP over the ranked list.
    relevant = {ranking[r] for r in positions}
    y = np.array([p in relevant for p in ranking])
    expected = average_precision_score(y, -np.arange(len(ranking)))
    assert mean_average_precision({'q': ranking}, {'q': relevant}, k=100) == pytest.approx(expected, abs=1e-12)

@given(retrieval_case(), st.randoms())
def test_map_duplicates_never_help(case, rnd):
    predictions, solution = case
    assume(any(solution.values()))
    base = mean_average_precision(predictions, solution)
    # repeating ids after the end of a list changes nothing
    padded = {q: p + [rnd.choice(p) for _ in range(5)] if p else p for q, p in predictions.items()}
    assert mean_average_precision(padded, solution) == pytest.approx(base, abs=1e-12)
    # replacing a miss by a repeat of an earlier id changes nothing: the repeat is a miss that keeps the rank
    for q, p in predictions.items():
        misses = [r for r, x in enumerate(p) if r > 0 and (x not in solution[q] or x in p[:r])]
        if misses:
            r = rnd.choice(misses)
            swapped = p[:r] + [p[rnd.randrange(r)]] + p[r + 1:]
            assert mean_average_precision({**predictions, q: swapped}, solution) == pytest.approx(base, abs=1e-12)

@given(retrieval_case(), st.randoms())
def test_map_ignores_query_order_and_is_bounded(case, rnd):
    predictions, solution = case
    assume(any(solution.values()))
    items = list(solution.items())
    rnd.shuffle(items)
    value = mean_average_precision(predictions, solution)
    assert mean_average_precision(predictions, dict(items)) == pytest.approx(value, abs=1e-12)
    assert 0.0 <= value <= 1.0

@given(retrieval_case(), st.integers(1, 10))
def test_map_perfect_and_missing(case, k):
    _, solution = case
    scored = [q for q, v in solution.items() if v]
    assume(scored)
    perfect = {q: sorted(v) + ['junk'] for q, v in solution.items()}
    assert mean_average_precision(perfect, solution, k) == pytest.approx(1.0)
    # a query without prediction scores 0: dropping one removes exactly its share
    dropped = {q: p for q, p in perfect.items() if q != scored[0]}
    assert mean_average_precision(dropped, solution, k) == pytest.approx(1 - 1 / len(scored))

@given(retrieval_case(), st.integers(1, 25))
def test_precision_at_k_matches_reference(case, k):
    predictions, solution = case
    scored = [q for q, v in solution.items() if v]
    assume(scored)
    ref = np.mean([sum(p in solution[q] and p not in predictions.get(q, [])[:r]
                       for r, p in enumerate(predictions.get(q, [])[:k])) / k for q in scored])
    assert mean_precision_at_k(predictions, solution, k) == pytest.approx(ref, abs=1e-12)

# ---------------------------------------------------------------- files
@given(st.dictionaries(hex_id, st.one_of(st.none(), st.tuples(st.integers(0, 10**6),
                                                               st.floats(allow_nan=False, allow_infinity=False))),
                       max_size=20))
def test_recognition_submission_round_trip(tmp_path_factory, preds):
    path = write_recognition_submission(preds, tmp_path_factory.mktemp('sub') / 'sub.csv')
    assert read_submission(path, 'recognition') == {i: p for i, p in preds.items() if p is not None}
    assert not [f for f in path.parent.iterdir() if f.name != 'sub.csv']   # no temporary left behind

@given(st.dictionaries(hex_id, st.lists(hex_id, min_size=1, max_size=10), max_size=20))
def test_retrieval_submission_round_trip(tmp_path_factory, preds):
    path = write_retrieval_submission(preds, tmp_path_factory.mktemp('sub') / 'sub.csv')
    assert read_submission(path) == preds

@given(st.integers(0, len('id,landmarks,Usage') - 1), st.sampled_from('abcxyzLU_;, '))
def test_one_wrong_header_character_names_file_and_column(tmp_path_factory, pos, ch):
    header = 'id,landmarks,Usage'
    bad = header[:pos] + ch + header[pos + 1:]
    assume(bad != header)
    path = tmp_path_factory.mktemp('sol') / 'recognition_solution.csv'
    path.write_text(bad + '\nabc,1,Public\n')
    with pytest.raises(ValueError) as e: read_solution(path, 'recognition')
    msg = str(e.value)
    assert str(path) in msg and any(f"missing column '{c}'" in msg for c in ('id', 'landmarks', 'Usage'))

@pytest.mark.parametrize('row, where', [('a,1 0.5 extra', 'column 2 (landmarks)'), ('a,1 abc', "score 'abc'"),
                                        ('a,one 0.5', "landmark id 'one'"), ('a,1 0.5,x', 'expected 2 fields')])
def test_bad_submission_rows_name_line(tmp_path, row, where):
    path = tmp_path / 'sub.csv'
    path.write_text(f'id,landmarks\nb,2 0.1\n{row}\n')
    with pytest.raises(ValueError, match='line 3') as e: read_submission(path)
    assert where in str(e.value) and str(path) in str(e.value)

def test_evaluate_splits_usage_and_drops_ignored(tmp_path):
    sol = tmp_path / 'sol.csv'
    sol.write_text('id,landmarks,Usage\na,1,Public\nb,2,Public\nc,3,Private\nd,,Private\ne,4,Ignored\n')
    sub = write_recognition_submission({'a': (1, 0.9), 'b': (2, 0.8), 'c': (3, 0.1), 'd': (3, 0.5),
                                        'e': (4, 9.9)}, tmp_path / 'sub.csv')
    s = evaluate(sol, sub)
    # Public: a, b right at ranks 1, 2 -> (1 + 1) / 2. Private: d (non-landmark) wrong at rank 1, c right at rank 2
    # -> (1/2) / 1. All (e ignored, else it would take rank 1): a 1/1, b 2/2, d, c 3/4 -> (1 + 1 + 3/4) / 3.
    assert s == pytest.approx({'Public': 1.0, 'Private': 0.5, 'All': 2.75 / 3})
    with pytest.raises(ValueError, match="'zz'"): evaluate(sol, {'zz': (1, 1.0)}, 'recognition')

# ---------------------------------------------------------------- CLI
def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL='2')
    return subprocess.run([sys.executable, '-m', 'landmarks.cli', 'evaluate', *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)

def _printed(stdout):
    return {line.split()[0]: float(line.split()[-1]) for line in stdout.strip().splitlines()}

def test_cli_recognition_and_retrieval(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f'{n:016x}' for n in range(40)]
    truth = {i: ({int(rng.integers(5))} if rng.random() < 0.7 else set()) for i in ids}
    usage = {i: 'Public' if n % 2 else 'Private' for n, i in enumerate(ids)}
    (tmp_path / 'rsol.csv').write_text('id,landmarks,Usage\n' + ''.join(
        f"{i},{' '.join(map(str, truth[i]))},{usage[i]}\n" for i in ids))
    preds = {i: (int(rng.integers(5)), float(rng.random())) for i in ids}
    write_recognition_submission(preds, tmp_path / 'rsub.csv')
    r = _cli('--solution', tmp_path / 'rsol.csv', '--predictions', tmp_path / 'rsub.csv')
    assert r.returncode == 0, r.stderr
    assert 'GAP' in r.stdout
    want = evaluate(tmp_path / 'rsol.csv', tmp_path / 'rsub.csv')
    assert _printed(r.stdout) == pytest.approx(want, abs=1e-6)
    assert want['Public'] == pytest.approx(global_average_precision(
        {i: p for i, p in preds.items() if usage[i] == 'Public'},
        {i: v for i, v in truth.items() if usage[i] == 'Public'}))

    index = [f'f{n:015x}' for n in range(30)]
    rel = {q: set(rng.choice(index, int(rng.integers(1, 5)), replace=False)) for q in ids[:10]}
    (tmp_path / 'qsol.csv').write_text('id,images,Usage\n' + ''.join(
        f"{q},{' '.join(sorted(v))},{'Public' if n < 5 else 'Private'}\n" for n, (q, v) in enumerate(rel.items())))
    ranked = {q: list(rng.choice(index, 10)) for q in ids[:10]}
    write_retrieval_submission(ranked, tmp_path / 'qsub.csv')
    r = _cli('--solution', tmp_path / 'qsol.csv', '--predictions', tmp_path / 'qsub.csv', '--k', 5)
    assert r.returncode == 0, r.stderr
    assert 'mAP@5' in r.stdout
    got = _printed(r.stdout)
    assert got['All'] == pytest.approx(ref_map(ranked, rel, 5), abs=1e-6)
    assert got['Public'] == pytest.approx(ref_map(ranked, {q: rel[q] for q in ids[:5]}, 5), abs=1e-6)

def test_cli_bad_file_says_where(tmp_path):
    (tmp_path / 'sol.csv').write_text('id,landmarks,Usage\na,1,Public\n')
    (tmp_path / 'sub.csv').write_text('id,landmarks\na,1 high\n')
    r = _cli('--solution', tmp_path / 'sol.csv', '--predictions', tmp_path / 'sub.csv')
    assert r.returncode != 0
    assert 'sub.csv line 2, column 2 (landmarks)' in r.stderr and 'Traceback' not in r.stderr

# ---------------------------------------------------------------- revisited Oxford / Paris
def ref_revisited(rankings, gnd, kappas=(1, 5, 10)):
    "The revisited protocol written out with plain loops: drop repeats and ignored images, then walk the list."
    table = {'easy': ['easy'], 'medium': ['easy', 'hard'], 'hard': ['hard']}
    out = {}
    for setting, kinds in table.items():
        per_query = []
        for ranked, g in zip(rankings, gnd):
            ok = set()
            for kind in kinds: ok |= set(g[kind])
            if not ok: continue
            skip = set(g['junk']) | (set(g['easy']) | set(g['hard'])) - ok
            kept, seen = [], set()
            for x in ranked:
                if x in seen: continue
                seen.add(x)
                if x not in skip: kept.append(x)
            hits, ap, last = 0, 0.0, 0
            for i, x in enumerate(kept):
                if x not in ok: continue
                before = 1.0 if i == 0 else hits / i
                hits += 1
                ap += (before + hits / (i + 1)) / 2 / len(ok)
                last = i + 1
            row = [ap]
            for k in kappas:
                kk = min(k, last)
                row.append(0.0 if last == 0 else sum(x in ok for x in kept[:kk]) / kk)
            per_query.append(row)
        names = ['mAP'] + [f'mP@{k}' for k in kappas]
        out[setting] = {n: (sum(r[c] for r in per_query) / len(per_query) if per_query else math.nan)
                        for c, n in enumerate(names)}
    return out

def random_gnd(rng, n_db=None, n_q=None):
    "A random revisited ground truth (disjoint easy/hard/junk, some empty) and random rankings of it."
    n_db = n_db or int(rng.integers(1, 40))
    n_q = n_q or int(rng.integers(1, 8))
    gnd, rankings = [], []
    for _ in range(n_q):
        kind = rng.choice(4, n_db, p=rng.dirichlet(np.ones(4)))      # 0 easy, 1 hard, 2 junk, 3 negative
        kinds = enumerate(('easy', 'hard', 'junk'))
        gnd.append({name: [int(i) for i in np.flatnonzero(kind == c)] for c, name in kinds})
        gnd[-1]['bbx'] = [0.0, 0.0, 10.0, 10.0]
        ranked = rng.permutation(n_db)
        if rng.random() < 0.4: ranked = ranked[:int(rng.integers(0, n_db + 1))]          # a truncated list
        if rng.random() < 0.2 and len(ranked): ranked = np.r_[ranked, rng.choice(ranked, 3)]   # repeats
        rankings.append([int(i) for i in ranked])
    return gnd, rankings

def _close(a, b, eps=1e-9):
    for s in ('easy', 'medium', 'hard'):
        assert a[s].keys() == b[s].keys()
        for m in a[s]:
            both_nan = math.isnan(a[s][m]) and math.isnan(b[s][m])
            assert both_nan or abs(a[s][m] - b[s][m]) <= eps, (s, m, a[s][m], b[s][m])

@pytest.mark.parametrize('seed', range(200))
def test_revisited_map_matches_loops(seed):
    from landmarks.evaluation import revisited_map
    gnd, rankings = random_gnd(np.random.default_rng(seed))
    _close(revisited_map(rankings, gnd), ref_revisited(rankings, gnd))

def _write_gnd(path, gnd, n_db, protocol=4, arrays=False):
    "A gnd pickle in the distributed layout (imlist, qimlist, gnd), lists or numpy arrays."
    conv = (lambda v: np.asarray(v, np.int64)) if arrays else list
    cfg = dict(imlist=[f'db_{i:03d}' for i in range(n_db)], qimlist=[f'q_{q:02d}' for q in range(len(gnd))],
               gnd=[{k: (conv(v) if k != 'bbx' else v) for k, v in g.items()} for g in gnd])
    path.write_bytes(pickle.dumps(cfg, protocol=protocol))
    return cfg

@pytest.mark.parametrize('seed', range(4))
def test_revisited_cli_matches_loops(tmp_path, seed):
    import json
    rng = np.random.default_rng(1000 + seed)
    gnd, rankings = random_gnd(rng, n_db=int(rng.integers(5, 60)), n_q=int(rng.integers(3, 12)))
    n_db = 1 + max([max(g['easy'] + g['hard'] + g['junk'], default=0) for g in gnd]
                   + [max(r, default=0) for r in rankings])
    cfg = _write_gnd(tmp_path / 'gnd_rtest.pkl', gnd, n_db, protocol=int(rng.integers(2, 6)), arrays=bool(seed % 2))
    rows = ['id,images'] + [f"{q},{' '.join(cfg['imlist'][i] for i in r)}" for q, r in zip(cfg['qimlist'], rankings)]
    (tmp_path / 'sub.csv').write_text('\n'.join(rows) + '\n')
    r = _cli('--protocol', 'revisited', '--gnd', tmp_path / 'gnd_rtest.pkl', '--predictions', tmp_path / 'sub.csv',
             '--json', tmp_path / 'out.json')
    assert r.returncode == 0, r.stderr
    assert 'medium' in r.stdout and 'mP@10' in r.stdout
    got = json.loads((tmp_path / 'out.json').read_text())
    _close(got, ref_revisited(rankings, gnd))

class _Custom:
    "Any class a pickle might name."
    def __init__(self): self.x = 1

@pytest.mark.parametrize('payload', ['os.system', 'custom', 'ordereddict', 'eval'])
def test_gnd_reader_refuses_other_classes(tmp_path, payload):
    import collections
    from landmarks.evaluation import read_gnd

    class Sys:
        def __reduce__(self): return (os.system, ('touch ' + str(tmp_path / 'pwned'),))

    class Eval:
        def __reduce__(self): return (eval, ('1',))
    objects = {'os.system': Sys(), 'custom': _Custom(), 'ordereddict': collections.OrderedDict(a=1), 'eval': Eval()}
    obj = objects[payload]
    f = tmp_path / 'gnd_evil.pkl'
    f.write_bytes(pickle.dumps(dict(imlist=['a'], qimlist=['q'], gnd=[dict(easy=[0], hard=[], junk=[], bbx=obj)])))
    with pytest.raises(ValueError, match=r'gnd_evil\.pkl: refused to load'):
        read_gnd(f)
    assert not (tmp_path / 'pwned').exists()
    r = _cli('--protocol', 'revisited', '--gnd', f, '--predictions', f)
    assert r.returncode != 0 and 'gnd_evil.pkl: refused to load' in r.stderr and 'Traceback' not in r.stderr

@pytest.mark.parametrize('protocol', [2, 3, 4, 5])
def test_gnd_reader_reads_numpy_and_lists(tmp_path, protocol):
    from landmarks.evaluation import read_gnd
    gnd = [dict(easy=[0, 2], hard=[1], junk=[], bbx=np.array([1.5, 2.0, 30.0, 40.0])),
           dict(easy=[], hard=[], junk=[2], bbx=[0, 0, 5, 5])]
    _write_gnd(tmp_path / 'g.pkl', gnd, 3, protocol=protocol, arrays=True)
    cfg = read_gnd(tmp_path / 'g.pkl')
    assert cfg['gnd'][0] == dict(easy=[0, 2], hard=[1], junk=[], bbx=(1.5, 2.0, 30.0, 40.0))
    assert cfg['imlist'] == ['db_000', 'db_001', 'db_002'] and cfg['qimlist'] == ['q_00', 'q_01']

def test_cli_scores_a_full_retrieve_submission_on_synth(tmp_path):
    "`landmarks retrieve` answers every test image; `landmarks evaluate` scores it (non-landmark queries Ignored)."
    from landmarks.data import dataset_root, load_gld
    root = dataset_root('synth:tiny,seed=7', tmp_path / 'data', progress=False)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL='2')
    sub = tmp_path / 'sub.csv'
    r = subprocess.run([sys.executable, '-m', 'landmarks.cli', 'retrieve', '--index', str(root), '--queries', str(root),
                        '--out', str(sub), '--work_dir', str(tmp_path / 'work'), '--max_features', '200'],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    gld = load_gld(root)
    assert set(gld.test.id) == set(gld.retrieval_solution.id)
    ignored = gld.retrieval_solution.Usage == 'Ignored'
    assert ignored.any() and (gld.retrieval_solution.images[ignored] == 'None').all()
    e = _cli('--solution', root / 'retrieval_solution.csv', '--predictions', sub)
    assert e.returncode == 0, e.stderr[-2000:]
    scores = _printed(e.stdout)
    assert 0 < scores['All'] <= 1
