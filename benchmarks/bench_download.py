"""Throughput of the downloaders on this machine, against a loopback server (no network): re-encoding,
URL-list downloads, shard md5 + extraction. Prints one line per measurement. `python benchmarks/bench_download.py`"""
import landmarks  # noqa: F401
import hashlib, io, json, sys, tarfile, tempfile, time
from pathlib import Path

import numpy as np, pandas as pd
from PIL import Image

from landmarks.download import LoopbackServer, download_shard, download_urls, reencode

N_URLS = int(sys.argv[1]) if len(sys.argv) > 1 else 600


def photo(w=640, h=480, seed=0):
    "A photo-sized JPEG (smooth gradients plus noise, so it compresses like a photo)."
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack([(x * (1 + c) / w * 255 + rng.normal(0, 12, (h, w))) % 255 for c in range(3)], -1).astype(np.uint8)
    b = io.BytesIO()
    Image.fromarray(a).save(b, 'JPEG', quality=90)
    return b.getvalue()


def rate(label, n, unit, seconds):
    print(f'{label:<44} {n / seconds:10.1f} {unit}/s   ({n} {unit} in {seconds:.2f} s)', flush=True)


imgs = [photo(seed=k) for k in range(20)]
t0 = time.perf_counter()
for k in range(100): reencode(imgs[k % 20], 256, 'short')
rate('reencode 640x480 -> 256 short side', 100, 'img', time.perf_counter() - t0)

with tempfile.TemporaryDirectory() as d, LoopbackServer({f'/{k}.jpg': imgs[k % 20] for k in range(N_URLS)}) as srv:
    urls = pd.DataFrame({'id': [f'{k:016x}' for k in range(N_URLS)],
                         'url': [srv.url(f'{k}.jpg') for k in range(N_URLS)]})
    for workers in (4, 16):
        out = Path(d)/f'w{workers}'
        t0 = time.perf_counter()
        s = json.loads(download_urls(urls, out, size=256, workers=workers, progress=False).read_text())
        assert s['downloaded'] == N_URLS, s
        rate(f'download_urls loopback, {workers} threads', N_URLS, 'img', time.perf_counter() - t0)
    t0 = time.perf_counter()
    s = json.loads(download_urls(urls, out, size=256, workers=16, progress=False).read_text())
    rate('download_urls rerun (all present, skipped)', N_URLS, 'img', time.perf_counter() - t0)

    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode='w') as tf:
        for k in range(400):
            i = f'{k:016x}'
            data = imgs[k % 20]
            info = tarfile.TarInfo(f'{i[0]}/{i[1]}/{i[2]}/{i}.jpg')
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    tar = b.getvalue()
    files = {'/train/images_000.tar': tar,
             '/md5sum/train/md5.images_000.txt': f'{hashlib.md5(tar).hexdigest()}  images_000.tar'.encode()}
    with LoopbackServer(files) as bucket:
        t0 = time.perf_counter()
        download_shard(Path(d)/'v2', 'train', 0, base_url=bucket.url())
        rate('download_shard (fetch, md5, extract 400 img)', len(tar) / 2**20, 'MB', time.perf_counter() - t0)
