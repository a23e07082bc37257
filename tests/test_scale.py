"""Chapters 3a and 10 (landmarks.distributed, landmarks.scale): Ray extraction gives the default engine's features;
shards resume and retry alone; the out-of-core and sharded indexes answer as one in-memory index. One local Ray
session for the module."""
import landmarks  # noqa: F401  (imports triton before anything can import tensorflow)
import os, shutil, signal, subprocess, sys, textwrap, time
import numpy as np, pytest, faiss
from landmarks.data import dataset_root
from landmarks.data import image_frame
from landmarks.delf import extract_features
from landmarks.distributed import extract_shards, ray_session as start_ray, read_manifest, same_features, shard_paths
from landmarks.scale import (SynthVectors, build_ooc_index, load_index, Reranked, search_parts, build_shard_index,
                             as_index, shard_index, RayIndex, search_images, _in_memory_index, same_answers)
from landmarks.index import Index, index_settings
from landmarks.cli import main as cli

SPEC = 'synth:tiny'

@pytest.fixture(scope='module')
def ray_session():
    import ray
    start_ray(None, workers=2)   # a local Ray (2 CPUs here), retried if the busy machine misses its start-up wait
    yield ray
    ray.shutdown()

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp('data')
    dataset_root(SPEC, d, progress=False)
    return d

@pytest.fixture(scope='module')
def single(data, tmp_path_factory):
    "The default engine's store of the whole tiny dataset (RootSIFT)."
    return extract_features(SPEC, tmp_path_factory.mktemp('single') / 'single.h5', features='sift', data_dir=data,
                            progress=False)

@pytest.fixture(scope='module')
def ray_store(ray_session, data, tmp_path_factory):
    "The tiny dataset extracted on Ray by 2 actors, 16 images per shard."
    return extract_shards(SPEC, tmp_path_factory.mktemp('ray') / 'ray.h5', features='sift', shard_size=16, engine='ray',
                          workers=2, data_dir=data, progress=False)

def _frame(data, n=12):
    return image_frame(SPEC, data).iloc[:n].reset_index(drop=True)

def test_ray_two_workers_same_features_as_single_process(ray_store, data, single):
    out = ray_store
    assert same_features(out, single)
    man = read_manifest(out)
    assert man['n_images'] == len(image_frame(SPEC, data)) and man['n_shards'] == -(-man['n_images'] // 16)
    assert {s['status'] for s in man['shards']} == {'done'}
    pids = {s['pid'] for s in man['shards']}
    # shards ran in the pool's actors (usually both; on a saturated machine Ray may hand all shards to the first one up)
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids

def test_cli_engine_ray_on_photo_folder_same_as_default_engine(ray_session, data, tmp_path):
    fr = image_frame(SPEC, data).iloc[:10]
    photos = tmp_path / 'photos'
    for i, r in enumerate(fr.itertuples()):
        d = photos / ('distractor' if i % 5 == 4 else f'landmark{i % 3}')
        d.mkdir(parents=True, exist_ok=True)
        shutil.copy(r.path, d / f'IMG_{i:04d}.jpg')
    cli(['extract', '--engine', 'ray', '--images', str(photos), '--out', str(tmp_path / 'ray.h5'), '--features', 'sift',
         '--shard_size', '4', '--batch_size', '2', '--workers', '2', '--data_dir', str(data)])
    cli(['extract', '--images', str(photos), '--out', str(tmp_path / 'default.h5'), '--features', 'sift',
         '--batch_size', '2', '--data_dir', str(data)])
    assert same_features(tmp_path / 'ray.h5', tmp_path / 'default.h5')
    assert read_manifest(tmp_path / 'ray.h5')['n_images'] == 10

def test_shard_killed_midway_reruns_alone(ray_session, data, tmp_path):
    fr = _frame(data)
    fifo = tmp_path / 'slow.jpg'
    os.mkfifo(fifo)     # reading it blocks: the run hangs inside shard 1
    fr_hang = fr.assign(path=[str(fifo) if i == 6 else p for i, p in enumerate(fr.path)])
    fr_hang.to_csv(tmp_path / 'frame.csv', index=False)
    out = tmp_path / 'feats.h5'
    code = textwrap.dedent(f"""
        import landmarks, pandas as pd
        from landmarks.distributed import extract_shards
        extract_shards(pd.read_csv({str(tmp_path / 'frame.csv')!r}, dtype=str), {str(out)!r}, features='sift',
                       shard_size=4, batch_size=1, engine='serial', data_dir={str(data)!r}, progress=False)""")
    proc = subprocess.Popen([sys.executable, '-c', code])
    shards = out.with_suffix('.shards')
    try:
        deadline = time.time() + 120
        while not ((shards / 'shard-00000.h5').exists() and list(shards.glob('shard-00001.h5.parts/*.h5'))):
            assert proc.poll() is None and time.time() < deadline, 'the run should hang in shard 1'
            time.sleep(0.2)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (shards / 'shard-00001.h5').exists() and not (shards / 'shard-00002.h5').exists()
    done0 = (shards / 'shard-00000.h5').stat().st_mtime_ns
    fifo.unlink()
    shutil.copy(fr.path[6], fifo)      # the file is readable now
    extract_shards(fr_hang, out, features='sift', shard_size=4, batch_size=1, engine='ray', workers=2, data_dir=data,
                   progress=False)
    assert (shards / 'shard-00000.h5').stat().st_mtime_ns == done0   # the finished shard was not redone
    man = read_manifest(out)
    assert [s['status'] for s in man['shards']] == ['done'] * 3
    assert {s['pid'] for s in man['shards'][1:]}.isdisjoint({proc.pid, os.getpid()})  # shards 1, 2 ran on Ray actors
    ref = extract_features(fr_hang, tmp_path / 'ref.h5', features='sift', batch_size=1, data_dir=data, progress=False)
    assert same_features(out, ref)

def test_failed_shard_is_retried_alone(ray_session, data, tmp_path):
    fr = _frame(data)
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not a jpeg')
    fr_bad = fr.assign(path=[str(bad) if i == 5 else p for i, p in enumerate(fr.path)])
    out = tmp_path / 'feats.h5'
    with pytest.raises(RuntimeError, match=r'shard-00001\.h5: .*broken\.jpg'):
        extract_shards(fr_bad, out, features='sift', shard_size=4, batch_size=2, engine='ray', workers=2, retries=1,
                       data_dir=data, progress=False)
    man = read_manifest(out)
    assert [(s['status'], s['attempts']) for s in man['shards']] == [('done', 1), ('failed', 2), ('done', 1)]
    assert 'broken.jpg' in man['shards'][1]['error']
    with pytest.raises(FileNotFoundError, match='shard-00001.h5'): shard_paths(out)
    before = {p: p.stat().st_mtime_ns for p in out.with_suffix('.shards').glob('shard-*.h5')}
    shutil.copy(fr.path[5], bad)                      # repaired
    extract_shards(fr_bad, out, features='sift', shard_size=4, batch_size=2, engine='serial', data_dir=data,
                   progress=False)
    man = read_manifest(out)
    assert [(s['status'], s['attempts']) for s in man['shards']] == [('done', 1), ('done', 3), ('done', 1)]
    assert {p: p.stat().st_mtime_ns for p in before} == before  # only the failed shard ran again
    assert same_features(out, extract_features(fr_bad, tmp_path / 'ref.h5', features='sift', batch_size=2,
                                               data_dir=data, progress=False))

def test_changed_plan_is_refused(data, tmp_path):
    fr = _frame(data)
    kw = dict(features='sift', shard_size=4, batch_size=2, engine='serial', data_dir=data, progress=False)
    out = extract_shards(fr, tmp_path / 'f.h5', **kw)
    with pytest.raises(ValueError, match='plan.csv, line 2: the image list'): extract_shards(fr.iloc[::-1], out, **kw)
    with pytest.raises(ValueError, match="max_features"): extract_shards(fr, out, **kw, max_features=50)
    with pytest.raises(ValueError, match='shard_size=4 must be a multiple of batch_size=3'):
        extract_shards(fr, out, **dict(kw, batch_size=3))

def test_out_of_core_and_sharded_search_answer_as_one_index(tmp_path):
    src = SynthVectors(25_000, batch_size=6_000, seed=3)          # 5 parts, the last one short
    path = build_ooc_index(src, tmp_path / 'ooc', nlist=50, m=10, nbits=6, sample=5_000)
    q = src.queries(300, seed=7)
    ref = _in_memory_index(tmp_path / 'ooc' / 'trained.index', src, nprobe=12)
    D, I = ref.search(q, 20)
    Do, Io = load_index(path, nprobe=12).search(q, 20)
    Ds, Is = search_parts(sorted((tmp_path / 'ooc' / 'parts').glob('part-*.index')), q, k=20, nprobe=12)
    assert load_index(path).ntotal == src.n == 25_000
    assert same_answers(Do, Io, D, I) and same_answers(Ds, Is, D, I)
    assert not same_answers(Do, np.roll(Io, 1, axis=0), D, I)
    assert os.path.getsize(tmp_path / 'ooc' / 'index.ivfdata') == src.n * (8 + 8)  # 60-bit codes and ids live on disk

@pytest.fixture(scope='module')
def hnsw_index(tmp_path_factory):
    "A test collection in 5 parts, indexed out of core with an HNSW coarse quantizer."
    src = SynthVectors(30_000, batch_size=6_000, seed=5)
    return src, build_ooc_index(src, tmp_path_factory.mktemp('hnsw') / 'ooc', nlist=64, quantizer='hnsw', m=10)

def test_ray_index_answers_as_the_single_index(ray_session, hnsw_index):
    src, path = hnsw_index
    q = src.queries(400, seed=9)
    D, I = load_index(path, nprobe=8).search(q, 20)
    shards = shard_index(path.parent, 3)                        # 2 + 2 + 1 parts
    with RayIndex(shards, nprobe=8, cpus_per_shard=0.5) as ri:  # one actor per shard, each memory-mapping its own
        Dr, Ir = ri.search(q, 20)
        pids = {s['pid'] for s in ri.shards}
        assert ri.ntotal == src.n and len(pids) == 3 and os.getpid() not in pids
        per_image = search_images(ri, [q[:150], q[150:]], k=20)   # many query images in one call
        Dx, Ix = Reranked(ri, path.with_suffix('.vectors.npy'), 8).search(q, 20)   # re-ranked after the merge
    assert same_answers(Dr, Ir, D, I)
    assert not same_answers(Dr, np.roll(Ir, 1, axis=0), D, I)
    assert all(same_answers(a, b, D[s], I[s]) for (a, b), s in zip(per_image, [slice(0, 150), slice(150, 400)]))
    assert same_answers(Dx, Ix, *load_index(path, nprobe=8, rerank=8).search(q, 20))
    assert [load_index(p).ntotal for p in shards] == [12_000, 12_000, 6_000]
    with pytest.raises(ValueError, match='n_shards=6'): shard_index(path.parent, 6)

def test_index_load_mmap_with_on_disk_lists(hnsw_index, tmp_path):
    src, path = hnsw_index
    disk = load_index(path, nprobe=8, fast_scan=False)         # the lists stay on disk
    ix = Index('ivfpq', disk, ['0'], dict(dim=40, **index_settings(src.n, nprobe=8)))
    ix.save(tmp_path / 'ix')                                   # faiss writes a reference to the on-disk lists
    with pytest.raises(FileNotFoundError, match='index.ivfdata, which is not beside it'): Index.load(tmp_path / 'ix')
    shutil.copy(path.with_suffix('.ivfdata'), tmp_path / 'ix' / 'index.ivfdata')
    q = src.queries(50, seed=2)
    for mmap in (True, False):                                 # faiss's IO_FLAG_MMAP used to segfault here
        back = Index.load(tmp_path / 'ix', mmap=mmap)
        np.testing.assert_array_equal(back.engine.search(q, 5)[1], ix.engine.search(q, 5)[1])

def test_settings_chosen_by_size(hnsw_index):
    src, path = hnsw_index
    index = load_index(path, nprobe=40)                        # (kept: ivf and q point into it)
    ivf = faiss.extract_index_ivf(index)
    q = faiss.downcast_index(ivf.quantizer)
    assert isinstance(q, faiss.IndexHNSW) and ivf.nlist == 64 and q.hnsw.efSearch == 80   # the graph keeps 2 nprobe
    s = [index_settings(n) for n in (10**6, 4 * 10**6, 10**9)]
    # 4 sqrt(n), (n/10^6)^(1/6) more past 10^6
    assert s[0]['nlist'] == 4000 and s[1]['nlist'] == int(4 * 2000 * 4 ** (1 / 6))
    assert [x['quantizer'] for x in s] == ['hnsw'] * 3
    assert index_settings(30_000) == dict(nlist=692, m=20, nbits=8, nprobe=16, niter=20, quantizer='flat', rerank=0,
                                          fastscan=False, code_dim=40)
    fast = index_settings(30_000, rerank=16)                   # re-ranked: 4-bit fast-scan codes of at most 18 bytes,
    assert (fast['m'], fast['nbits'], fast['fastscan'], fast['code_dim']) == (36, 4, True, 36)   # 40 -> 36 (PCA)
    wide = index_settings(30_000, rerank=16, code_bytes=20)   # 20 bytes: the 40 dimensions, one sub-quantizer each
    assert (wide['m'], wide['code_dim']) == (40, 40)
    with pytest.raises(ValueError, match='code_bytes=0'): index_settings(30_000, rerank=16, code_bytes=0)
    assert {k: index_settings(30_000, rerank=16, nbits=8)[k] for k in ('m', 'fastscan')} == dict(m=20, fastscan=False)

def test_fast_scan_reads_the_4bit_lists_and_finds_what_the_disk_index_finds(hnsw_index):
    "load_index reads 4-bit codes into faiss's fast-scan index; fast_scan=False keeps them on disk: same neighbours."
    src, path = hnsw_index
    fast, disk = load_index(path, nprobe=8, rerank=16), load_index(path, nprobe=8, rerank=16, fast_scan=False)
    assert isinstance(fast.index, faiss.IndexIVFPQFastScan) and type(disk.index) is faiss.IndexIVFPQ
    assert fast.ntotal == disk.ntotal == src.n and disk.index.pq.nbits == 4 and not disk.index.by_residual
    q, ids = src.matching(300, seed=4)
    a, b = fast.search(q, 1)[1][:, 0], disk.search(q, 1)[1][:, 0]
    assert (a == ids).mean() > 0.95 and (a == b).mean() > 0.95

def test_default_codes_are_projected_to_18_bytes_and_search_as_in_memory(tmp_path):
    "Default re-ranked settings: PCA 40 -> 36 before PQ36x4 (18 bytes, and an 8-byte id on disk); all readings agree."
    src = SynthVectors(12_000, batch_size=4_000, seed=5)
    path = build_ooc_index(src, tmp_path / 'ooc', nlist=64, quantizer='hnsw')
    disk = load_index(path, nprobe=6, fast_scan=False)
    assert isinstance(disk, faiss.IndexPreTransform) and disk.chain.at(0).d_out == 36 and disk.d == 40
    ivf = faiss.downcast_index(faiss.extract_index_ivf(disk))
    assert (ivf.d, ivf.code_size, ivf.pq.M, ivf.pq.nbits) == (36, 18, 36, 4)
    assert path.with_suffix('.ivfdata').stat().st_size == src.n * (18 + 8)
    q, ids = src.matching(300, seed=4)
    mem = _in_memory_index(tmp_path / 'ooc' / 'trained.index', src, nprobe=6)
    assert same_answers(*mem.search(q, 10), *disk.search(q, 10))
    fast, slow = load_index(path, nprobe=6, rerank=16), load_index(path, nprobe=6, rerank=16, fast_scan=False)
    assert isinstance(faiss.downcast_index(fast.index.index), faiss.IndexIVFPQFastScan) and fast.index.d == 40
    a, b = fast.search(q, 1)[1][:, 0], slow.search(q, 1)[1][:, 0]
    assert (a == ids).mean() > 0.95 and (a == b).mean() > 0.95

def test_warm_reads_the_kept_vectors_once_in_order(hnsw_index):
    "Reranked.warm reads the whole vectors file (the bytes read by this process grow by its size); answers unchanged."
    src, path = hnsw_index
    rr, vectors = load_index(path, nprobe=8, rerank=16), path.with_suffix('.vectors.npy')
    q = src.queries(50, seed=3)
    before = rr.search(q, 5)
    io = lambda: int(next(l for l in open('/proc/self/io') if l.startswith('rchar')).split()[1])
    start = io()
    assert rr.warm(chunk_mb=1) >= 0 and io() - start >= vectors.stat().st_size
    after = rr.search(q, 5)
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])
    assert Reranked(rr.index, np.load(vectors), 16).warm() == 0.0   # vectors already in memory: nothing to read

def test_kept_vectors_are_float16_and_held_in_memory_with_the_same_answers(hnsw_index, tmp_path):
    "The kept vectors take 2 bytes a dimension; held in memory or mapped, the answers are the same as float32's."
    src, path = hnsw_index
    vectors = path.with_suffix('.vectors.npy')
    kept = np.load(vectors, mmap_mode='r')
    ids, x = src.batch(2)
    assert kept.dtype == np.float16 and vectors.stat().st_size < 128 + src.n * src.d * 2 + 64
    np.testing.assert_allclose(kept[ids], x, atol=2e-3)
    mapped, held = load_index(path, nprobe=8, rerank=16), load_index(path, nprobe=8, rerank=16, vectors_in_memory=True)
    assert not mapped.in_memory and held.in_memory and type(held.vectors) is np.ndarray
    assert held.vectors.dtype == np.float16 and np.array_equal(held.vectors, kept)
    assert held.warm() == 0.0 and mapped.warm(hold=False) >= 0 and not mapped.in_memory   # read, not held
    q = src.queries(300, seed=4)
    Dm, Im = mapped.search(q, 10)
    Dh, Ih = held.search(q, 10)
    assert np.array_equal(Dm, Dh) and np.array_equal(Im, Ih)
    exact32 = Reranked(mapped.index, np.concatenate([src.batch(i)[1] for i in range(src.n_batches)]), 16)
    assert (exact32.search(q, 1)[1][:, 0] == Ih[:, 0]).mean() > 0.98   # float16 rows re-rank as float32 ones do
    with pytest.raises(ValueError, match="build_ooc_index: parameter vectors_dtype='int8'"):
        build_ooc_index(src, tmp_path / 'bad', nlist=8, m=10, vectors_dtype='int8')
    assert not (tmp_path / 'bad').exists()   # refused before any folder is made or any training is done
    s32 = SynthVectors(4_000, batch_size=2_000, seed=2)
    p32 = build_ooc_index(s32, tmp_path / 'f32', nlist=8, m=10, vectors_dtype='float32')
    np.testing.assert_array_equal(np.load(p32.with_suffix('.vectors.npy'))[s32.batch(1)[0]], s32.batch(1)[1])

def test_rerank_needs_ids_that_are_rows(tmp_path):
    "Kept vectors are found by id: a source whose ids are not rows 0..n-1 is refused with rerank, accepted without."
    class Offset(SynthVectors):
        def batch(self, i):
            ids, x = super().batch(i)
            return ids + 10**9, x
    src = Offset(4_000, batch_size=2_000, seed=2)
    with pytest.raises(ValueError, match='ids outside 0..3999'): build_ooc_index(src, tmp_path / 'a', nlist=8, m=10)
    path = build_ooc_index(src, tmp_path / 'b', nlist=8, m=10, rerank=0)
    assert not path.with_suffix('.vectors.npy').exists() and load_index(path).ntotal == 4_000
    with pytest.raises(FileNotFoundError, match='index.vectors.npy'): load_index(path, rerank=4)

def test_index_from_ray_shards_answers_as_kdtree_index(ray_store, single, tmp_path):
    from landmarks.index import build_index, Index
    from landmarks.features import read_features
    out = ray_store
    ref_dir = build_index(single, tmp_path, kind='ivfpq', name='ref', nlist=12)
    idx = build_shard_index(out, tmp_path / 'ooc', trained=ref_dir / 'index.faiss', batch_images=25)
    a, b = as_index(idx), Index.load(ref_dir)
    ids = sorted(read_features(single))[:3]
    q = np.concatenate([read_features(single, ids)[i]['descriptors'] for i in ids])
    na, nb = a.search(q, k=8), b.search(q, k=8)
    assert a.ntotal == b.ntotal and a.image_ids == b.image_ids
    np.testing.assert_allclose(na.distances, nb.distances, atol=1e-5)
    np.testing.assert_array_equal(na.images, nb.images)
    own = as_index(build_shard_index(out, tmp_path / 'own', nlist=12, batch_images=25))   # trained on a streamed sample
    assert own.settings == b.settings and own.ntotal == b.ntotal
    assert (own.search(q, k=1).images == nb.images[:, :1]).mean() > 0.8   # mostly the same nearest image

def test_measured_peak_memory_is_the_childs_own(tmp_path):
    from landmarks.scale import measure_index
    ballast = np.ones(700 * 2**20 // 8)          # 700 MB resident in this (forking) process
    r = measure_index(20_000, tmp_path, recall=0.5, batch_size=10_000, n_images=1, features=100, recall_queries=20,
                      threads=1)
    assert 20 < r['base_rss_mb'] <= r['peak_rss_mb'] < 650   # not the parent's 700+ MB
    s = index_settings(20_000, recall=0.5, rerank=32)         # settings chosen by size (and the recall aimed at)
    assert {k: r[k] for k in s} == s and (s['m'], s['nbits'], s['code_dim']) == (20, 4, 40) and r['rerank'] == 32
    assert 80 <= r['vectors_bytes_per_feature'] < 81 and r['vectors_dtype'] == 'float16'   # kept, beside the index
    assert r['vectors_in_memory']                              # a small index's kept vectors are held in memory
    assert 10 + 8 <= r['bytes_per_feature'] < 10 + 8 + 8 and r['query_s_per_image'] > 0   # 20 4-bit codes and an id
    assert r['recall1_matched'] >= 0.8 and 0 <= r['recall1_random'] <= 1
    assert not (tmp_path / 'n20000').exists()    # the scratch index is removed
    del ballast

def test_measure_in_two_parts_keeps_the_index_and_reads_any_nprobe(tmp_path):
    "part='build' then part='query' (any nprobe: a search-time setting): the index and the exact answers stay."
    from landmarks.scale import measure_index
    kw = dict(recall=0.5, batch_size=10_000, recall_queries=20, threads=1)
    b = measure_index(20_000, tmp_path, part='build', **kw)
    built = sorted(p.name for p in (tmp_path / 'n20000').iterdir())
    q1 = measure_index(20_000, tmp_path, part='query', n_images=1, features=50, nprobe=2, **kw)
    assert q1['nprobe'] == 2 and q1['build_s'] == b['build_s']        # searched the built index, not a new one
    cached = sorted((tmp_path / 'n20000').glob('exact_*.npy'))
    assert len(cached) == 1 and set(built) <= {p.name for p in (tmp_path / 'n20000').iterdir()}
    q2 = measure_index(20_000, tmp_path, part='query', n_images=1, features=50, nprobe=8, **kw)
    assert q2['nprobe'] == 8 and q2['recall1_random'] >= q1['recall1_random'] - 0.1
    q3 = measure_index(20_000, tmp_path, part='query', n_images=1, features=50, nprobe=8, rerank=64, **kw)
    assert q3['rerank'] == 64 and q3['build_s'] == b['build_s']       # the re-ranking depth too: a search setting
    with pytest.raises(ValueError, match='build it again'):          # a build setting differs: refused, named
        measure_index(20_000, tmp_path, part='query', nlist=7, **kw)
