"""Downloaders against a real HTTP server on 127.0.0.1 (never an outside address), and `load_folder`."""
import landmarks  # noqa: F401  (import order, see landmarks/__init__)
import hashlib, io, json, signal, subprocess, sys, tarfile, textwrap, time, warnings
from pathlib import Path

import numpy as np, pandas as pd, pytest
from PIL import Image

from landmarks.data import dev_photos, load_folder, load_gld
from landmarks.download import (DownloadError, LoopbackServer, download_cli, download_gld_v1, download_gld_v2,
                                download_shard, download_urls, fetch, fetch_file, reencode)

REAL = dev_photos()  # the dev photos, or None
ROOT = Path(__file__).resolve().parents[1]


def jpeg(w=64, h=48, seed=0, **kw):
    "A small JPEG of random 8x8 blocks."
    rng = np.random.default_rng(seed)
    a = np.kron(rng.integers(0, 255, (h//8, w//8, 3)), np.ones((8, 8, 1))).astype(np.uint8)
    b = io.BytesIO()
    Image.fromarray(a).save(b, 'JPEG', **kw)
    return b.getvalue()


def image_files(folder):
    "Stems of the jpg files under `folder`."
    return sorted(p.stem for p in Path(folder).rglob('*.jpg'))


def leftovers(folder):
    "Temporary, partial or staging files left under `folder`."
    return [p for p in Path(folder).rglob('*') if p.suffix in ('.tmp', '.part', '.journal') or 'staging' in p.name
            or p.name == '.partial']


FAST = dict(timeout=3, retries=3, backoff=0.01, progress=False)

# ---------------------------------------------------------------- fetch


def test_fetch_retries_transient_errors_then_succeeds():
    with LoopbackServer({'/a.jpg': b'abc'}, faults={'/a.jpg': [500, 503, None]}) as srv:
        assert fetch(srv.url('a.jpg'), backoff=0.001) == b'abc'
        assert [r[2] for r in srv.log] == [500, 503, 200]


def test_fetch_404_fails_at_once():
    with LoopbackServer({}) as srv:
        with pytest.raises(DownloadError, match='HTTP 404') as e: fetch(srv.url('nope.jpg'), retries=3, backoff=0.001)
        assert not e.value.transient and len(srv.log) == 1


def test_fetch_times_out_on_a_slow_server():
    with LoopbackServer({'/s.jpg': b'x'}, faults={'/s.jpg': 'slow:1.5'}) as srv:
        t0 = time.monotonic()
        with pytest.raises(DownloadError, match='timeout'):
            fetch(srv.url('s.jpg'), timeout=0.2, retries=1, backoff=0.001)
        assert time.monotonic() - t0 < 1.4 and len(srv.log) == 2        # gave up on each attempt before the answer


def test_fetch_follows_redirects_but_not_to_placeholders():
    with LoopbackServer({'/new.jpg': b'img', '/photo_unavailable.png': b'grey'},
                        faults={'/old.jpg': 'redirect:/new.jpg',
                                '/dead.jpg': 'redirect:/photo_unavailable.png'}) as srv:
        assert fetch(srv.url('old.jpg')) == b'img'
        with pytest.raises(DownloadError, match='placeholder'): fetch(srv.url('dead.jpg'))


def test_fetch_cut_response_is_truncated():
    with LoopbackServer({'/c.jpg': jpeg()}, faults={'/c.jpg': 'cut:100'}) as srv:
        with pytest.raises(DownloadError, match='truncated response'): fetch(srv.url('c.jpg'), retries=1, backoff=0.001)


def test_reencode_sizes_and_errors():
    big = jpeg(200, 120)
    assert Image.open(io.BytesIO(reencode(big, 64))).size == (107, 64)
    assert Image.open(io.BytesIO(reencode(big, 64, 'square'))).size == (64, 64)
    assert Image.open(io.BytesIO(reencode(big, 64, 'none'))).size == (200, 120)
    png = io.BytesIO()
    Image.new('RGBA', (80, 40), (255, 0, 0, 128)).save(png, 'PNG')
    assert Image.open(io.BytesIO(reencode(png.getvalue(), 20))).format == 'JPEG'
    exif = Image.Exif()
    exif[0x0112] = 6
    rot = io.BytesIO()
    Image.open(io.BytesIO(big)).save(rot, 'JPEG', exif=exif.tobytes())
    assert Image.open(io.BytesIO(reencode(rot.getvalue(), 64))).size == (64, 107)   # EXIF orientation applied
    for bad, reason in ((b'<html>Not found</html>', 'not an image'), (big[:len(big)//2], 'truncated image'),
                        (big[:300], 'truncated image')):
        with pytest.raises(DownloadError, match=reason): reencode(bad)
    with pytest.raises(ValueError, match='resize='): reencode(big, resize='wide')

# ---------------------------------------------------------------- URL lists


def test_download_urls_every_kind_of_failure(tmp_path):
    files = {f'/{k}.jpg': jpeg(seed=k) for k in range(10)}
    ids = {k: f'{k:03d}abcdef' for k in range(10)}
    faults = {'/1.jpg': 404, '/2.jpg': 500, '/3.jpg': [500, None], '/4.jpg': 'slow:3', '/5.jpg': b'<html>moved</html>',
              '/6.jpg': files['/6.jpg'][:len(files['/6.jpg'])//2], '/7.jpg': 'cut:50', '/8.jpg': 403}
    expect = {1: 'HTTP 404', 2: 'HTTP 500', 4: 'timeout', 5: 'not an image', 6: 'truncated image',
              7: 'truncated response', 8: 'HTTP 403'}
    with LoopbackServer(files, faults=faults) as srv:
        urls = pd.DataFrame({'id': list(ids.values()), 'url': [srv.url(f'{k}.jpg') for k in ids]})
        urls.loc[len(urls)] = ['nourl0000', '']
        urls.loc[len(urls)] = ['ftpurl000', 'ftp://127.0.0.1/x.jpg']
        s = json.loads(download_urls(urls, tmp_path/'train', size=32, workers=4,
                                     **dict(FAST, timeout=1.0, retries=1)).read_text())
    assert image_files(tmp_path/'train') == sorted(ids[k] for k in (0, 3, 9))
    for f in (tmp_path/'train').rglob('*.jpg'):
        im = Image.open(f)
        assert im.format == 'JPEG' and min(im.size) == 32 and f.parent.name == f.stem[2]
    fails = pd.read_csv(tmp_path/'train_failures.csv', keep_default_na=False)
    got = dict(zip(fails.id, fails.reason))
    assert got == {**{ids[k]: r for k, r in expect.items()}, 'nourl0000': 'no url', 'ftpurl000': 'unsupported url'}
    assert dict(zip(fails.id, fails.url))[ids[1]] == srv.url('1.jpg')
    assert s['downloaded'] == 3 and s['failed'] == 9 and s['missing_frac'] == pytest.approx(9/12, abs=1e-6)
    assert leftovers(tmp_path) == []


def test_thousand_urls_with_20_percent_bad(tmp_path):
    "Acceptance: exactly the good images written, every bad one in the failures CSV with its reason, rerun is a no-op."
    rng = np.random.default_rng(0)
    kinds = {404: 'HTTP 404', 410: 'HTTP 410', 'html': 'not an image', 'trunc': 'truncated image', 500: 'HTTP 500'}
    imgs = [jpeg(32, 24, seed=k % 50) for k in range(50)]
    files, faults, bad = {}, {}, {}
    rows = []
    for k in range(1000):
        i = hashlib.md5(str(k).encode()).hexdigest()[:16]
        path = f'/im/{i}.jpg'
        files[path] = imgs[k % 50]
        if rng.random() < 0.2:
            kind = list(kinds)[k % len(kinds)]
            faults[path] = (b'<!doctype html><p>removed' if kind == 'html'
                            else files[path][:200 + k % 100] if kind == 'trunc' else kind)
            bad[i] = kinds[kind]
        rows.append((i, path))
    csv = tmp_path/'train.csv'
    with LoopbackServer(files, faults=faults) as srv:
        pd.DataFrame([(i, srv.url(p), k % 7) for k, (i, p) in enumerate(rows)],
                     columns=['id', 'url', 'landmark_id']).to_csv(csv, index=False)
        s1 = json.loads(download_urls(csv, tmp_path/'train', size=24, workers=16, chunk=128, **FAST).read_text())
        n1 = len(srv.log)
        s2 = json.loads(download_urls(csv, tmp_path/'train', size=24, workers=16, chunk=128, **FAST).read_text())
        n2 = len(srv.log) - n1
    good = sorted(i for i, _ in rows if i not in bad)
    assert 150 < len(bad) < 250
    assert image_files(tmp_path/'train') == good
    fails = pd.read_csv(tmp_path/'train_failures.csv', keep_default_na=False)
    assert len(fails) == len(bad) and dict(zip(fails.id, fails.reason)) == bad
    assert (s1['downloaded'] == len(good) and s1['failed'] == len(bad)
            and s1['missing_frac'] == pytest.approx(len(bad)/1000, abs=1e-6))
    assert (s2['downloaded'], s2['failed'], n2) == (0, 0, 0)
    assert s2['present'] == len(good) and s2['skipped_failed'] == len(bad) and s2['missing_frac'] == s1['missing_frac']
    assert len(pd.read_csv(tmp_path/'train_failures.csv')) == len(bad)
    assert leftovers(tmp_path) == []


def test_retry_failed_picks_up_links_that_came_back(tmp_path):
    files = {'/a.jpg': jpeg(seed=1), '/b.jpg': jpeg(seed=2)}
    with LoopbackServer(files, faults={'/b.jpg': [404]}) as srv:
        urls = pd.DataFrame({'id': ['aaa1', 'bbb2'], 'url': [srv.url('a.jpg'), srv.url('b.jpg')]})
        download_urls(urls, tmp_path/'x', **FAST)
        assert list(pd.read_csv(tmp_path/'x_failures.csv').id) == ['bbb2']
        download_urls(urls, tmp_path/'x', **FAST)                      # failures are not retried by default
        assert len(srv.log) == 2
        s = json.loads(download_urls(urls, tmp_path/'x', retry_failed=True, **FAST).read_text())
    assert s['downloaded'] == 1 and image_files(tmp_path/'x') == ['aaa1', 'bbb2']
    assert len(pd.read_csv(tmp_path/'x_failures.csv')) == 0


def test_bad_lists_name_the_file_line_and_column(tmp_path):
    (tmp_path/'l.csv').write_text('id,link\nabcd,http://127.0.0.1:9/x.jpg\n')
    with pytest.raises(ValueError, match=r"l.csv: missing column\(s\) \['url'\]"):
        download_urls(tmp_path/'l.csv', tmp_path/'o', progress=False)
    (tmp_path/'m.csv').write_text('id,url\nabcd,http://127.0.0.1:9/x.jpg\n../x,http://127.0.0.1:9/y.jpg\n')
    with pytest.raises(ValueError, match=r'm.csv line 3, column id'):
        download_urls(tmp_path/'m.csv', tmp_path/'o', progress=False)
    with pytest.raises(FileNotFoundError, match='urls='): download_urls(tmp_path/'none.csv', tmp_path/'o')
    with pytest.raises(ValueError, match='layout='): download_urls(tmp_path/'m.csv', tmp_path/'o', layout='deep')


_KILL_URLS = textwrap.dedent('''
    import landmarks, sys
    from landmarks.download import download_urls
    download_urls(sys.argv[1], sys.argv[2], size=24, workers=4, timeout=30, retries=0, progress=False)
''')


def test_url_download_killed_and_resumed(tmp_path):
    "A kill -9 in the middle leaves no partial image; the rerun fetches only what is missing."
    files = {f'/{k}.jpg': jpeg(seed=k) for k in range(24)}
    faults = {f'/{k}.jpg': 'slow:20' for k in range(12, 24)}          # the second half hangs: the run is mid-way
    faults['/3.jpg'] = 404
    with LoopbackServer(files, faults=faults) as srv:
        ids = [f'{k:02d}img' for k in range(24)]
        pd.DataFrame({'id': ids, 'url': [srv.url(f'{k}.jpg') for k in range(24)]}).to_csv(tmp_path/'l.csv', index=False)
        p = subprocess.Popen([sys.executable, '-c', _KILL_URLS, str(tmp_path/'l.csv'), str(tmp_path/'img')], cwd=ROOT)
        try:
            for _ in range(300):
                if len(image_files(tmp_path/'img')) >= 11 and sum(1 for r in srv.log if r[3] == 'slow:20') >= 4: break
                time.sleep(0.1)
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        assert len(image_files(tmp_path/'img')) == 11                     # 12 fast ones minus the 404
        assert pd.read_csv(tmp_path/'img_failures.journal').id.tolist() == ['03img']
        for k in range(12, 24): srv.faults.pop(f'/{k}.jpg')
        before = len(srv.log)
        s = json.loads(download_urls(tmp_path/'l.csv', tmp_path/'img', size=24, workers=4, **FAST).read_text())
        again = [r[0] for r in srv.log[before:]]
    assert sorted(again) == sorted(f'/{k}.jpg' for k in range(12, 24))  # nothing fetched twice, the 404 not retried
    assert image_files(tmp_path/'img') == sorted(i for i in ids if i != '03img')
    assert (pd.read_csv(tmp_path/'img_failures.csv').id.tolist() == ['03img']
            and s['missing_frac'] == pytest.approx(1/24, abs=1e-6))
    assert leftovers(tmp_path) == []


def test_gld_v1_layout_loads(tmp_path):
    files = {f'/{k}.jpg': jpeg(seed=k) for k in range(6)}
    files['/lists/test.csv'] = b'id,url\n1abc,http://127.0.0.1:9/gone.jpg\n'
    with LoopbackServer(files, faults={'/5.jpg': 404}) as srv:
        pd.DataFrame({'id': [f'{k}abc' for k in range(6)], 'url': [srv.url(f'{k}.jpg') for k in range(6)],
                      'landmark_id': [0, 0, 1, 1, 2, 2]}).to_csv(tmp_path/'tr.csv', index=False)
        pd.DataFrame({'id': ['0abc'], 'url': [srv.url('0.jpg')]}).to_csv(tmp_path/'ix.csv', index=False)
        download_gld_v1(tmp_path/'v1', train=tmp_path/'tr.csv', index=tmp_path/'ix.csv', test=srv.url('lists/test.csv'),
                        size=24, **FAST)
    g = load_gld(tmp_path/'v1', version=1)
    assert (len(g.train) == 6 and g.missing.id.tolist() == ['5abc', '1abc']
            and (tmp_path/'v1'/'train'/'0abc.jpg').exists())
    assert pd.read_csv(tmp_path/'v1'/'test_failures.csv').reason.str.startswith('connection error').all()
    with pytest.raises(ValueError, match='at least one'): download_gld_v1(tmp_path/'v1')
    with pytest.raises(FileNotFoundError, match='train='): download_gld_v1(tmp_path/'v1', train=tmp_path/'nope.csv')

# ---------------------------------------------------------------- GLD v2 shards


def tar_of(ids, seed=0, pad=0, odd=False):
    "A tar with `a/b/c/<id>.jpg` members, a directory entry (as real tars have) and `pad` bytes of other data."
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode='w') as tf:
        d = tarfile.TarInfo('x')
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        members = [(f'{i[0]}/{i[1]}/{i[2]}/{i}.jpg', jpeg(40, 24, seed=seed + k)) for k, i in enumerate(ids)]
        if odd: members.append((f'{ids[0][0]}/._{ids[0]}.jpg', b'macOS resource fork'))
        if pad: members.insert(len(members) // 2, ('README.txt', np.random.default_rng(seed).bytes(pad)))
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return b.getvalue()


def bucket(n_train=2, per=6, pad=0):
    "A small GLD v2 bucket: {path: bytes} and the ids of each shard."
    files, ids = {}, {}
    for split, n in (('train', n_train), ('index', 1), ('test', 1)):
        for s in range(n):
            ids[split, s] = [f'{split[:2]}{s:02d}{k:012x}' for k in range(per)]
            tar = tar_of(ids[split, s], seed=100 * s + len(split), pad=pad)
            files[f'/{split}/images_{s:03d}.tar'] = tar
            files[f'/md5sum/{split}/md5.images_{s:03d}.txt'] = (
                f'{hashlib.md5(tar).hexdigest()}  images_{s:03d}.tar\n'.encode())
    files['/metadata/train.csv'] = pd.DataFrame(
        [(i, f'http://x.invalid/{i}', k % 2) for (sp, _), v in ids.items() if sp == 'train' for k, i in enumerate(v)],
        columns=['id', 'url', 'landmark_id']).to_csv(index=False).encode()
    for sp in ('index', 'test'):
        files[f'/metadata/{sp}.csv'] = pd.DataFrame(
            {'id': [i for (p, _), v in ids.items() if p == sp for i in v]}).to_csv(index=False).encode()
    files['/ground_truth/recognition_solution_v2.1.csv'] = pd.DataFrame(
        {'id': ids['test', 0], 'landmarks': '1', 'Usage': 'Public'}).to_csv(index=False).encode()
    files['/ground_truth/retrieval_solution_v2.1.csv'] = pd.DataFrame(
        {'id': ids['test', 0], 'images': ids['index', 0][0], 'Usage': 'Public'}).to_csv(index=False).encode()
    files['/metadata/train_clean.csv'] = b'landmark_id,images\n0,x\n'
    return files, ids


def tar_requests(srv, path): return [r for r in srv.log if r[0] == path]


def test_shard_md5_fails_once_then_succeeds(tmp_path):
    files, ids = bucket(1)
    bad = bytearray(files['/train/images_000.tar'])
    bad[700] ^= 0xFF
    with LoopbackServer(files, faults={'/train/images_000.tar': [bytes(bad), None]}) as srv:
        marker = download_shard(tmp_path, 'train', 0, base_url=srv.url(), backoff=0.001)
        assert len(tar_requests(srv, '/train/images_000.tar')) == 2
        assert download_shard(tmp_path, 'train', 0, base_url=srv.url()) == marker          # done: nothing fetched again
        assert len(tar_requests(srv, '/train/images_000.tar')) == 2
    m = json.loads(marker.read_text())
    assert m['images'] == 6 and m['md5'] == hashlib.md5(files['/train/images_000.tar']).hexdigest()
    assert image_files(tmp_path/'train') == sorted(ids['train', 0]) and leftovers(tmp_path) == []
    assert not list(tmp_path.rglob('*.tar'))


def test_bad_shard_is_retried_alone_and_reported(tmp_path):
    files, ids = bucket(3)
    faults = {'/train/images_001.tar': b'not the tar'}                  # always wrong: md5 never matches
    with LoopbackServer(files, faults=faults) as srv:
        with pytest.warns(UserWarning, match='images_001.tar'):
            root = download_gld_v2(tmp_path, train=3, index=None, test=1, base_url=srv.url(), md5_retries=1, **FAST)
        assert (len(tar_requests(srv, '/train/images_001.tar')) == 2
                and len(tar_requests(srv, '/train/images_000.tar')) == 1)
        info = json.loads((root/'download_v2.json').read_text())
        assert list(info['failed']) == ['train/images_001.tar'] and 'md5' in info['failed']['train/images_001.tar']
        assert info['shards_done'] == 3
        assert image_files(root/'train') == sorted(ids['train', 0] + ids['train', 2])
        srv.faults.clear()
        before = len(srv.log)
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            download_gld_v2(tmp_path, train=3, index=None, test=1, base_url=srv.url(), **FAST)
        # only the bad one
        assert sorted(r[0] for r in srv.log[before:] if r[0].endswith('.tar')) == ['/train/images_001.tar']
    g = load_gld(root)
    assert sorted(g.missing.id) == sorted(ids['index', 0])               # index shards were not asked for
    assert len(g.recognition_solution) == 6 and g.retrieval_solution is not None
    assert (root/'train_clean.csv').exists() and leftovers(tmp_path) == []


def test_server_without_range_restarts_cleanly(tmp_path):
    data = np.random.default_rng(0).bytes(300_000)
    with LoopbackServer({'/f.bin': data}, faults={'/f.bin': ['cut:100000', None]}, ranges=False) as srv:
        fetch_file(srv.url('f.bin'), tmp_path/'f.bin', backoff=0.001)
    assert (tmp_path/'f.bin').read_bytes() == data and not (tmp_path/'f.bin.part').exists()
    assert [r[1] for r in srv.log] == [None, 'bytes=100000-']            # asked for a range, got the whole file again


def test_odd_tar_members_are_skipped_with_a_warning(tmp_path):
    ids = [f'ab{k:014x}' for k in range(3)]
    tar = tar_of(ids, odd=True)
    files = {'/train/images_007.tar': tar, '/md5sum/train/md5.images_007.txt': hashlib.md5(tar).hexdigest().encode()}
    with LoopbackServer(files) as srv, pytest.warns(UserWarning, match=r"skipped 1 member.*\._ab"):
        download_shard(tmp_path, 'train', 7, base_url=srv.url())
    assert (image_files(tmp_path/'train') == ids
            and json.loads((tmp_path/'.shards'/'train'/'images_007.json').read_text())['images'] == 3)


def test_broken_tar_is_never_taken_as_done(tmp_path):
    files, ids = bucket(1)
    broken = files['/train/images_000.tar'][:3000]                       # ends inside a member
    sick = {**files, '/train/images_000.tar': broken,
            '/md5sum/train/md5.images_000.txt': f'{hashlib.md5(broken).hexdigest()}  images_000.tar\n'.encode()}
    with LoopbackServer(sick) as srv:
        with pytest.raises(DownloadError, match='broken tar'):
            download_shard(tmp_path, 'train', 0, base_url=srv.url(), backoff=0.001)
    assert not (tmp_path/'.shards'/'train'/'images_000.json').exists() and not list(tmp_path.rglob('*staging*'))
    with LoopbackServer(files) as srv:                                   # the bucket is fixed: the shard is redone
        download_shard(tmp_path, 'train', 0, base_url=srv.url(), backoff=0.001)
    assert image_files(tmp_path/'train') == sorted(ids['train', 0]) and leftovers(tmp_path) == []


_KILL_SHARD = textwrap.dedent('''
    import landmarks, sys
    from landmarks.download import download_gld_v2
    download_gld_v2(sys.argv[1], train=1, index=None, test=None, csvs=False, base_url=sys.argv[2], timeout=60, progress=False)
''')  # noqa: E501  (the script's own line)


def test_shard_download_killed_halfway_resumes_with_range(tmp_path):
    "Acceptance: interrupted and restarted, the shard ends verified and extracted, no duplicate or partial files."
    files, ids = bucket(1, per=6, pad=400_000)
    tar = files['/train/images_000.tar']
    half = len(tar) // 2
    with LoopbackServer(files, faults={'/train/images_000.tar': [f'stall:{half}']}) as srv:
        p = subprocess.Popen([sys.executable, '-c', _KILL_SHARD, str(tmp_path), srv.url()], cwd=ROOT)
        part = tmp_path/'.shards'/'train'/'images_000.tar.part'
        try:
            for _ in range(300):
                if part.exists() and part.stat().st_size == half: break
                time.sleep(0.1)
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        srv.release()
        assert part.stat().st_size == half and not (tmp_path/'train').exists()
        root = download_gld_v2(tmp_path, train=1, index=None, test=None, csvs=False, base_url=srv.url(), **FAST)
        reqs = tar_requests(srv, '/train/images_000.tar')
    assert [r[1] for r in reqs] == [None, f'bytes={half}-']
    marker = json.loads((root/'.shards'/'train'/'images_000.json').read_text())
    assert marker['md5'] == hashlib.md5(tar).hexdigest() and marker['images'] == 6 and marker['bytes'] == len(tar)
    jpgs = list((root/'train').rglob('*.jpg'))
    assert sorted(p.stem for p in jpgs) == sorted(ids['train', 0]) and len(jpgs) == len({p.name for p in jpgs})
    assert all(Image.open(p).format == 'JPEG' for p in jpgs)
    assert leftovers(tmp_path) == [] and not list(tmp_path.rglob('*.tar'))


def test_shard_selection_errors_name_the_parameter(tmp_path):
    with pytest.raises(ValueError, match=r"train='0-600'.*outside 0..499"):
        download_gld_v2(tmp_path, train='0-600', csvs=False, progress=False)
    with pytest.raises(ValueError, match=r"index='x'"):
        download_gld_v2(tmp_path, train=None, index='x', csvs=False, progress=False)


def test_cli_downloads_v2_and_v1(tmp_path, capsys):
    files, ids = bucket(2)
    with LoopbackServer(files) as srv:
        from landmarks.cli import main
        main(['download', 'gld-v2', '--root', str(tmp_path/'v2'), '--train', '0-1', '--index', '1', '--test', 'none',
              '--base_url', srv.url(), '--quiet'])
        assert '3 shards done, 0 failed' in capsys.readouterr().out
        pd.DataFrame({'id': ids['train', 0], 'url': [srv.url('none')] * 6}).to_csv(tmp_path/'l.csv', index=False)
        download_cli(['gld-v1', '--root', str(tmp_path/'v1'), '--train', str(tmp_path/'l.csv'), '--retries', '0',
                      '--quiet'])
        assert 'missing 100.0%' in capsys.readouterr().out
    assert image_files(tmp_path/'v2'/'train') == sorted(ids['train', 0] + ids['train', 1])
    with pytest.raises(SystemExit, match='unknown source'): download_cli(['gld-v3'])

# ---------------------------------------------------------------- own photos


def make_folder(root):
    "Two landmarks, distractors, a png, a sideways photo, a broken file and a non-image."
    for name, n in (('b_tower', 3), ('a_church', 2), ('Distractor', 2), ('c_single', 1)):
        (root/name).mkdir(parents=True, exist_ok=True)
        for k in range(n): (root/name/f'p{k}.jpg').write_bytes(jpeg(seed=k + 10 * n))
    Image.open(io.BytesIO(jpeg(seed=9))).save(root/'a_church'/'night.PNG')
    exif = Image.Exif()
    exif[0x0112] = 8
    (root/'b_tower'/'sub').mkdir()
    Image.open(io.BytesIO(jpeg(64, 48, seed=3))).save(root/'b_tower'/'sub'/'side.jpeg', exif=exif.tobytes())
    (root/'b_tower'/'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 nothing else')
    (root/'b_tower'/'notes.txt').write_text('not an image')
    return root


def test_load_folder_all_images_both_index_and_query(tmp_path):
    g = load_folder(make_folder(tmp_path/'ph'), cache_dir=tmp_path/'cache')
    assert dict(zip(g.train.landmark, g.train.landmark_id)) == {'a_church': 0, 'b_tower': 1, 'c_single': 2}
    assert sorted(g.index.id) == sorted(g.test.id) and len(g.index) == 10
    assert 'b_tower/sub/side' in set(g.index.id) and 'a_church/night' in set(g.index.id)
    assert g.missing.id.tolist() == ['b_tower/broken']
    side = g.index.set_index('id').path['b_tower/sub/side']
    assert Path(side).is_relative_to(tmp_path/'cache') and Image.open(side).size == (48, 64)
    assert g.train.set_index('id').path['b_tower/p0'] == str(tmp_path/'ph'/'b_tower'/'p0.jpg')
    rec = dict(zip(g.recognition_solution.id, g.recognition_solution.landmarks))
    assert rec['Distractor/p1'] == '' and rec['b_tower/sub/side'] == '1' and rec['c_single/p0'] == '2'
    ret = dict(zip(g.retrieval_solution.id, g.retrieval_solution.images))
    assert sorted(ret['b_tower/p0'].split()) == ['b_tower/p1', 'b_tower/p2', 'b_tower/sub/side']
    # nothing to find / no landmark
    assert 'c_single/p0' not in ret and not any(i.startswith('Distractor') for i in ret)
    assert set(g.recognition_solution.Usage) <= {'Public', 'Private'}


def test_load_folder_split_into_index_and_queries(tmp_path):
    root = make_folder(tmp_path/'ph')
    g = load_folder(root, query_frac=0.5, seed=1, cache_dir=tmp_path/'cache')
    assert set(g.index.id).isdisjoint(g.test.id) and len(g.index) + len(g.test) == 10
    for lm in ('a_church', 'b_tower'):
        assert (g.index.landmark == lm).sum() >= 1 and (g.test.landmark == lm).sum() >= 1
    assert 'c_single/p0' in set(g.index.id) and set(g.train.id) == set(g.index[g.index.landmark != 'Distractor'].id)
    for q, imgs in zip(g.retrieval_solution.id, g.retrieval_solution.images):
        assert {i.split('/')[0] for i in imgs.split()} == {q.split('/')[0]} and set(imgs.split()) <= set(g.index.id)
    assert load_folder(root, query_frac=0.5, seed=1, cache_dir=tmp_path/'cache').test.id.tolist() == g.test.id.tolist()
    assert any(load_folder(root, query_frac=0.5, seed=s, cache_dir=tmp_path/'cache').test.id.tolist()
               != g.test.id.tolist() for s in range(2, 6))


def test_load_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='root='): load_folder(tmp_path/'none')
    (tmp_path/'e').mkdir()
    with pytest.raises(ValueError, match='no jpg'): load_folder(tmp_path/'e')
    root = make_folder(tmp_path/'ph')
    with pytest.raises(ValueError, match='query_frac=1.5'): load_folder(root, query_frac=1.5)
    (root/'a_church'/'p0.png').write_bytes((root/'a_church'/'p1.jpg').read_bytes())
    with pytest.raises(ValueError, match="same id 'a_church/p0'"): load_folder(root, cache_dir=tmp_path/'c')


@pytest.mark.skipif(REAL is None, reason='shared real-landmarks-dev photos not present')
def test_load_folder_real_landmarks_dev(tmp_path):
    g = load_folder(REAL, cache_dir=tmp_path/'c')
    manifest = pd.read_csv(REAL.parent/'manifest.csv')
    assert g.train.landmark.nunique() == 17 and sorted(g.train.landmark_id.unique()) == list(range(17))
    assert len(g.index) == len(manifest) == 93 and len(g.missing) == 0
    assert (g.test.landmark == 'distractor').sum() == (manifest.landmark == 'distractor').sum() == 7
    assert sorted(g.index.id) == sorted(Path(f).relative_to('images').with_suffix('').as_posix() for f in manifest.file)
    s = load_folder(REAL, query_frac=0.3, seed=0, cache_dir=tmp_path/'c')
    assert len(s.index) + len(s.test) == 93 and s.train.landmark.nunique() == 17
    assert len(s.retrieval_solution) == (s.test.landmark != 'distractor').sum()


def test_two_downloads_into_one_folder_are_refused(tmp_path):
    from landmarks.download import _exclusive
    (tmp_path/'l.csv').write_text('id,url\nabcd,http://127.0.0.1:9/x.jpg\n')
    with _exclusive(tmp_path/'img'):
        with pytest.raises(RuntimeError, match='another download'):
            download_urls(tmp_path/'l.csv', tmp_path/'img', progress=False)
    assert not (tmp_path/'img_failures.csv').exists()


def test_shard_killed_during_extraction_is_redone(tmp_path):
    "A kill -9 while a verified shard is being extracted: no marker, no partial image; the rerun completes it."
    small = jpeg(16, 8)
    ids = [f'{k % 7}{k % 5}{k % 3}{k:013x}' for k in range(4000)]
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode='w') as tf:
        for i in ids:
            info = tarfile.TarInfo(f'{i[0]}/{i[1]}/{i[2]}/{i}.jpg')
            info.size = len(small)
            tf.addfile(info, io.BytesIO(small))
    tar = b.getvalue()
    files = {'/train/images_000.tar': tar,
             '/md5sum/train/md5.images_000.txt': f'{hashlib.md5(tar).hexdigest()}  images_000.tar'.encode()}
    marker = tmp_path/'.shards'/'train'/'images_000.json'
    with LoopbackServer(files) as srv:
        p = subprocess.Popen([sys.executable, '-c', _KILL_SHARD, str(tmp_path), srv.url()], cwd=ROOT)
        try:
            for _ in range(3000):
                if len(list((tmp_path/'train').rglob('*.jpg'))) if (tmp_path/'train').exists() else 0: break
                time.sleep(0.01)
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        n_killed = len(list((tmp_path/'train').rglob('*.jpg')))
        if marker.exists(): pytest.skip('extraction finished before the kill (machine too fast for this test)')
        assert 0 < n_killed < len(ids) and (tmp_path/'.shards'/'train'/'images_000.tar').exists()
        # no partial image in place
        assert all(p.read_bytes() == small for p in (tmp_path/'train').rglob('*.jpg'))
        download_gld_v2(tmp_path, train=1, index=None, test=None, csvs=False, base_url=srv.url(), **FAST)
        # the verified tar was reused
        assert len(tar_requests(srv, '/train/images_000.tar')) == 1
    jpgs = list((tmp_path/'train').rglob('*.jpg'))
    assert len(jpgs) == len(ids) and sorted(p.stem for p in jpgs) == sorted(ids)
    assert json.loads(marker.read_text())['images'] == len(ids) and leftovers(tmp_path) == []


# ---------------------------------------------------------------- the GLD v2 miniature (gld-mini's data)


@pytest.fixture(scope='module')
def synth_dir(tmp_path_factory):
    "One data_dir for the SynthLandmarks sets of the mirror tests (generated once)."
    return tmp_path_factory.mktemp('data')


def test_mirror_serves_a_bucket_that_landmarks_download_fetches_back_unchanged(tmp_path, synth_dir, capsys):
    from landmarks.data import dataset_root
    from landmarks.download import GLD_V2_CSVS, mirror_gld_v2
    root = mirror_gld_v2('synth:tiny', tmp_path/'gld'/'v2', {'train': 3}, data_dir=synth_dir)
    said = capsys.readouterr().out
    assert 'landmarks download gld-v2 --root' in said and '--base-url http://127.0.0.1:' in said, said
    bucket = tmp_path/'gld'/'bucket'
    names = {str(p.relative_to(bucket)) for p in bucket.rglob('*') if p.is_file()}
    assert {'train/images_002.tar', 'md5sum/train/md5.images_002.txt', 'index/images_000.tar', 'test/images_000.tar',
            *GLD_V2_CSVS.values()} <= names
    got, src = load_gld(root), load_gld(dataset_root('synth:tiny', synth_dir))
    for split in ('train', 'index', 'test'):
        a, b = (getattr(g, split).set_index('id').sort_index() for g in (got, src))
        assert a.index.tolist() == b.index.tolist()
        assert all(Path(p).read_bytes() == Path(q).read_bytes() for p, q in zip(a.path, b.path)), split
    pd.testing.assert_frame_equal(got.retrieval_solution, src.retrieval_solution)
    info = json.loads((root/'download_v2.json').read_text())
    assert info['shards_done'] == 5 and not info['failed'] and info['settings']['base_url'].startswith('http://127.0.0.1:')


def test_a_root_fetched_from_another_bucket_is_refused(tmp_path, synth_dir):
    from landmarks.download import mirror_gld_v2
    mirror_gld_v2('synth:tiny', tmp_path/'v2', data_dir=synth_dir)
    with pytest.raises(FileExistsError, match='fetched from another bucket'):
        mirror_gld_v2('synth:tiny', tmp_path/'v2', {'index': 2}, data_dir=synth_dir)


def test_mirror_cli_is_a_download_source(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'landmarks.cli', 'download', 'gld-v2-mirror', '--dataset', 'synth:tiny',
                        '--root', str(tmp_path/'v2'), '--data-dir', str(tmp_path), '--train', '0', '--quiet'],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "shards={'train': 0}" in r.stderr and 'Traceback' not in r.stderr, r.stderr
