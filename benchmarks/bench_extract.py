"""Extraction throughput (images/s) of DELF-R50 (7 scales) and RootSIFT at 256 and 512 px, beside the backbone's
FLOP-based ceiling on this machine (measured matmul GFLOP/s / FLOPs per image).

    .venv/bin/python benchmarks/bench_extract.py [--sizes 256,512] [--n 2] [--scales 0.25,...]
"""
import landmarks  # noqa: F401
import argparse, time
import numpy as np, torch
from torch.utils.flop_counter import FlopCounterMode
from landmarks.delf import DELF, DELF_SCALES, DELFExtractor, RootSIFT, demo_image, pyramid_level


def matmul_gflops(n=2048, seconds=2.0):
    "Sustained float32 matmul GFLOP/s of torch on this machine (all its threads)."
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds: a @ b; reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def delf_gflop(model, size, scales):
    "FLOPs (GFLOP) of the DELF network over one size x size image's pyramid."
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        for s in scales: model(pyramid_level(torch.zeros(1, 3, size, size), s))
    return fc.get_total_flops() / 1e9


def rate(fn, images, min_s=1.0):
    "Images per second of fn(list of images), one warm-up call first."
    fn(images[:1])
    n, t0 = 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t0 < min_s: fn(images); n += len(images)
    return n / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', default='256,512'); p.add_argument('--n', type=int, default=2)
    p.add_argument('--scales', default=','.join(map(str, DELF_SCALES)))
    a = p.parse_args()
    sizes, scales = [int(s) for s in a.sizes.split(',')], tuple(float(s) for s in a.scales.split(','))
    torch.manual_seed(0)
    model = DELF('resnet50').eval()
    ext = DELFExtractor(model, {'arch': 'resnet50'}, scales=scales, max_features=1000, device='cpu')
    sift = RootSIFT(max_features=1000)
    g = matmul_gflops()
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads: matmul {g:.1f} GFLOP/s')
    print(f'DELF-R50 conv4_x + attention, {len(scales)} scales {scales}')
    print(f"{'size':>5} {'GFLOP/img':>10} {'ceiling img/s':>14} {'DELF img/s':>11} {'of ceiling':>11} {'RootSIFT img/s':>15}")
    for size in sizes:
        ims = [demo_image(size, i) for i in range(a.n)]
        gf = delf_gflop(model, size, scales)
        d = rate(ext, ims, 0.5)
        s = rate(sift, [demo_image(size, i) for i in range(8)], 1.0)
        print(f'{size:>5} {gf:>10.1f} {g / gf:>14.3f} {d:>11.3f} {d / (g / gf):>10.0%} {s:>15.1f}', flush=True)


if __name__ == '__main__': main()
