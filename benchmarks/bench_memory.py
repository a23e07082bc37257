"""Peak memory of extracting one very large photo (8000 x 6000 JPEG): RootSIFT and DELF-ResNet50 (random weights cost
the same as trained ones), with the default input bounds and with the DELF bound lifted to the 2048-px decode bound.
Each case runs in its own process; peak = that process's max RSS. Writes benchmarks/results/memory.csv.
`python benchmarks/bench_memory.py`"""
import csv, os, subprocess, sys, tempfile, time
from pathlib import Path

CASES = {  # name: code run in a fresh process on the photo at sys.argv[1]
    'rootsift': "from landmarks.delf import RootSIFT, read_image, MAX_SIDE\n"
                "RootSIFT()([read_image(sys.argv[1], MAX_SIDE)])",
    'delf-r50 (max_side 1024, default)': "from landmarks.delf import DELF, DELFExtractor, read_image, MAX_SIDE\n"
                                         "DELFExtractor(DELF('resnet50'))([read_image(sys.argv[1], MAX_SIDE)])",
    'delf-r50 (max_side 2048)': "from landmarks.delf import DELF, DELFExtractor, read_image, MAX_SIDE\n"
                                "DELFExtractor(DELF('resnet50'), max_side=2048)([read_image(sys.argv[1], MAX_SIDE)])",
}


def photo(path):
    "An 8000 x 6000 JPEG of smooth noise."
    import cv2
    import numpy as np
    small = (np.random.default_rng(0).random((750, 1000, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(path), cv2.resize(small, (8000, 6000), interpolation=cv2.INTER_CUBIC))
    return path


def peak_mb(code, image):
    "Max RSS (MB) and seconds of a fresh python process running `code` on `image`."
    script = f"import sys, resource\n{code}\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
    t = time.time()
    out = subprocess.run([sys.executable, '-c', script, str(image)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1]) / 1024, time.time() - t


if __name__ == '__main__':
    rows = []
    with tempfile.TemporaryDirectory() as d:
        image = photo(Path(d) / 'huge.jpg')
        for name, code in CASES.items():
            mb, s = peak_mb(code, image)
            rows.append(dict(case=name, photo='8000x6000 jpeg', peak_rss_mb=round(mb), seconds=round(s, 1),
                             cpus=os.cpu_count(), load=round(os.getloadavg()[0], 1),
                             command='python benchmarks/bench_memory.py'))
            print(f'{name:38s} peak {mb:7.0f} MB  {s:5.1f} s')
    out = Path(__file__).parent / 'results' / 'memory.csv'
    with open(out, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(out)
