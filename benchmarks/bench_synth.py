"""SynthLandmarks generation throughput at 256x256: images/s per core (target: at least 30), 1 and all workers."""
import os, shutil, tempfile, time
from pathlib import Path

from landmarks.data import synth_landmarks

def run(workers, n=400, size=256):
    d = Path(tempfile.mkdtemp())/'bench'
    t = time.perf_counter()
    synth_landmarks(d, n_landmarks=20, n_train=n - 120, n_index=80, n_test=40, size=size, workers=workers,
                    progress=False)
    dt = time.perf_counter() - t
    shutil.rmtree(d.parent)
    return n/dt

cores = len(os.sched_getaffinity(0))
print(f'SynthLandmarks at 256x256 on {cores} cores (JPEG files written, CSVs included)')
print(f'{"workers":>8} {"images/s":>10} {"per core":>10}  target 30/core')
for w in sorted({1, cores}):
    r = run(w)
    print(f'{w:>8} {r:>10.1f} {r/w:>10.1f}  {"ok" if r/w >= 30 else "BELOW TARGET"}')
