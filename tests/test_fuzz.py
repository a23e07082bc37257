"""Fuzzing (hypothesis) of what reads untrusted input: the GLD and Kaggle CSV readers, the command-line parsing and
image decoding. Whatever comes in, the answer is a result or one clear error naming the file or parameter."""
import landmarks  # noqa: F401
import io, tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from landmarks.cli import main
from landmarks.data import GLDFormatError, is_safe_id, read_gld_csv
from landmarks.delf import read_image
from landmarks.evaluation import read_solution, read_submission

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CLI = settings(FAST, max_examples=30)
TMP = Path(tempfile.mkdtemp(prefix='fuzz-'))

# CSV-ish text: mostly the characters CSVs are made of, sometimes anything
chars = st.sampled_from(list('abc0123456789-_./ ,"\n\r\t;é\x00'))
cell = st.one_of(st.text(alphabet=chars, max_size=12), st.just('..'))
csv_text = st.one_of(st.lists(cell, max_size=30).map(''.join), st.text(max_size=200))
csv_bytes = st.one_of(csv_text.map(lambda t: t.encode('utf-8', 'surrogatepass')), st.binary(max_size=200))


def _file(data:bytes, name:str) -> Path:
    p = TMP / name
    p.write_bytes(data)
    return p


@FAST
@given(head=st.sampled_from(['id,url,landmark_id\n', 'id\n', 'id,landmarks,Usage\n', '']), body=csv_bytes)
def test_read_gld_csv(head, body):
    p = _file(head.encode() + body, 'gld.csv')
    try: df = read_gld_csv(p, ['id', 'url', 'landmark_id'], int_columns=['landmark_id'])
    except GLDFormatError as e:
        assert str(e).startswith(str(p)) and '\n' not in str(e), e
        return
    assert list(df.columns) == ['id', 'url', 'landmark_id'] and df.id.map(is_safe_id).all() and df.id.is_unique


@FAST
@given(head=st.sampled_from(['id,landmarks,Usage\n', 'id,images,Usage\n', 'id,landmarks\n', 'id,images\n', '']),
       body=csv_bytes, task=st.sampled_from([None, 'recognition', 'retrieval']))
def test_read_solution_and_submission(head, body, task):
    p = _file(head.encode() + body, 'kaggle.csv')
    for reader in (read_solution, read_submission):
        try: reader(p, task)
        except ValueError as e: assert 'kaggle.csv' in str(e) or 'task' in str(e), e


def _one_line(capsys, argv):
    "Run `main(argv)`: it returns None or exits; any error is exactly one line on stderr, never a traceback."
    try: code = main(argv)
    except SystemExit as e: code = e.code
    err = capsys.readouterr().err
    assert code in (None, 0, 2), (argv, code, err)
    if code == 2: assert len(err.strip().splitlines()) == 1 and 'Traceback' not in err, (argv, err)
    return code, err


token = st.one_of(st.sampled_from(['--k', '--max-distance', '--size', '--landmarks', '--train', '--index', '--queries',
                                   '--out', '--features', '--index-type', '--task', '--solution', '--predictions',
                                   '--workers', '--batch-size', '--splits', '--strict', '--overwrite', '-1', '0', 'nan',
                                   'inf', '1e309', 'sift', 'x', '', '--', '-', '=', '--k=3']),
                  st.text(max_size=8), st.integers(-10**12, 10**12).map(str))


@CLI
@given(cmd=st.sampled_from(['synth', 'download', 'evaluate', 'train', 'recognize', 'extract', 'retrieve', 'report',
                            'nosuch', '']),
       args=st.lists(token, max_size=6))
def test_cli_never_tracebacks(capsys, cmd, args):
    "Random arguments, always ending in an option no command has: parsing fails in one line, before any work."
    _one_line(capsys, [cmd, *args, '--zz-no-such-option'])


@CLI
@given(k=st.one_of(st.integers(-10**9, 10**9), st.sampled_from([0, 1, 1000, 1001])),
       dist=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -1.0, 0.8])),
       features=st.sampled_from(['sift', 'delf', 'surf', '']), index_type=st.sampled_from(['kdtree', 'flat', 'annoy']))
def test_retrieve_arguments(capsys, k, dist, features, index_type):
    "Any numbers: either a range error naming the option, or (all in range) the missing --index named; never work."
    code, err = _one_line(capsys, ['retrieve', '--index', str(TMP / 'no-such-folder'), '--queries', str(TMP),
                                   '--k', str(k), '--max-distance', repr(dist), '--features', features,
                                   '--index-type', index_type])
    assert code == 2
    assert any(n in err for n in ('--k', '--max-distance', '--features=', '--index-type=', 'no-such-folder')), err


@CLI
@given(landmarks=st.integers(-5, 3), size=st.integers(-10, 40), train=st.one_of(st.none(), st.integers(-3, 10)))
def test_synth_arguments(capsys, landmarks, size, train):
    "Any numbers against a folder synth did not make: refused in one line, the folder untouched."
    theirs = TMP / 'theirs'
    theirs.mkdir(exist_ok=True)
    (theirs / 'notes.txt').write_text('keep')
    argv = ['synth', str(theirs), '--overwrite', '--landmarks', str(landmarks), '--size', str(size)]
    code, err = _one_line(capsys, argv + ([] if train is None else ['--train', str(train)]))
    assert code == 2 and sorted(p.name for p in theirs.iterdir()) == ['notes.txt'], err


def _encoded(fmt, mode, size):
    "Bytes of a small image in `fmt` and `mode`."
    a = np.random.default_rng(size).integers(0, 255, (size, size, 3), np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).convert(mode).save(buf, fmt)
    return buf.getvalue()


images = st.builds(_encoded, st.sampled_from(['JPEG', 'PNG']), st.sampled_from(['RGB', 'L']), st.integers(1, 40))


@FAST
@given(data=st.one_of(st.binary(max_size=300), images,
                      st.tuples(images, st.integers(0, 400), st.binary(min_size=1, max_size=4)).map(
                          lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + len(t[2]):]),             # corrupted bytes
                      st.tuples(images, st.floats(0, 1)).map(lambda t: t[0][:int(len(t[0]) * t[1])])))  # truncated
def test_image_decoding(data):
    p = _file(data, 'fuzz.jpg')
    try: a = read_image(p, max_side=64)
    except ValueError as e:
        assert str(e).startswith(f'{p}: cannot read the image'), e
        return
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 and 0 < max(a.shape[:2]) <= 64


def test_safe_ids():
    for ok in ('00cba0067c078490', 'abc', 'img_1-2.v3'): assert is_safe_id(ok)
    for bad in ('..', '../x', 'a/b', '/abs', 'a\\b', 'ab', '', '.hidden', 'x..y', 'a b', None, 7):
        assert not is_safe_id(bad), bad
