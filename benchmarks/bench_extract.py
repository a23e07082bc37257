"""Extraction throughput (images/s) of DELF-R50 (7 scales) in float32 and in bfloat16 (autocast, channels-last) at 256
and 512 px, beside the float32 and bfloat16 matmul ceilings measured in the same run (GFLOP/s / FLOPs per image),
the fraction of the bfloat16 ceiling reached, and the bfloat16 features' agreement with float32 (same keypoints,
descriptor cosine); RootSIFT for comparison. Writes one CSV row per size with the command that made it.

    .venv/bin/python benchmarks/bench_extract.py [--sizes 256,512] [--n 8,4] [--out benchmarks/results/extract.csv]
"""
import landmarks  # noqa: F401
import argparse, os, sys, time

import numpy as np, pandas as pd, torch
from torch.utils.flop_counter import FlopCounterMode

from landmarks.delf import DELF, DELF_SCALES, DELFExtractor, RootSIFT, bf16_native, demo_image, feature_agreement
from landmarks.delf import pyramid_level


def matmul_gflops(dtype, n=2048, seconds=2.0):
    "Sustained matmul GFLOP/s of torch on this machine in `dtype` (all its threads)."
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def delf_gflop(model, size, scales):
    "FLOPs (GFLOP) of the DELF network over one size x size image's pyramid."
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        for s in scales: model(pyramid_level(torch.zeros(1, 3, size, size), s))
    return fc.get_total_flops() / 1e9


def timed(fn, images):
    "(images per second, result) of one call of fn on a list of images."
    t0 = time.perf_counter()
    out = fn(images)
    return len(images) / (time.perf_counter() - t0), out


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', default='256,512')
    p.add_argument('--n', default='8,4', help='images per call (one batch, as extract_features passes them), per size')
    p.add_argument('--scales', default=','.join(map(str, DELF_SCALES)))
    p.add_argument('--max_features', type=int, default=1000)
    p.add_argument('--out', default='benchmarks/results/extract.csv')
    a = p.parse_args()
    command = ' '.join(['.venv/bin/python'] + sys.argv)
    sizes, ns = [int(s) for s in a.sizes.split(',')], [int(s) for s in a.n.split(',')]
    scales = tuple(float(s) for s in a.scales.split(','))
    torch.manual_seed(0)
    model = DELF('resnet50').eval()
    kw = dict(scales=scales, max_features=a.max_features, device='cpu')
    ext = {amp: DELFExtractor(model, {'arch': 'resnet50'}, amp=amp, **kw) for amp in ('fp32', 'bf16')}
    sift = RootSIFT(max_features=a.max_features)
    load = os.getloadavg()[0]
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {bf16_native("cpu")}, '
          f'load average {load:.1f}; matmul ceilings measured before and after each extraction')
    print(f'DELF-R50 conv4_x + attention, {len(scales)} scales {scales}, {a.max_features} features')
    print(f"{'size':>5} {'GFLOP/img':>9} {'fp32 GF/s':>9} {'bf16 GF/s':>9} {'fp32 img/s':>10} {'of fp32 ceil':>12} "
          f"{'bf16 img/s':>10} {'of bf16 ceil':>12} {'speed-up':>8} {'same kp':>8} {'cos p5':>7} {'SIFT img/s':>10}")
    rows = []
    for size, n in zip(sizes, ns):
        ims = [demo_image(size, i) for i in range(n)]
        gf = delf_gflop(model, size, scales)
        for e in ext.values(): e(ims[:1])  # warm-up (oneDNN picks its kernels)
        c32 = matmul_gflops(torch.float32)  # each ceiling measured right before its own extraction (a shared CPU)
        r32, f32 = timed(ext['fp32'], ims)
        c16 = matmul_gflops(torch.bfloat16)
        r16, f16 = timed(ext['bf16'], ims)
        g32, g16 = (c32 + matmul_gflops(torch.float32)) / 2, (c16 + matmul_gflops(torch.bfloat16)) / 2  # and after
        agree = np.array([feature_agreement(x, y) for x, y in zip(f32, f16)])
        rs, _ = timed(sift, ims)
        row = dict(command=command, size=size, scales=len(scales), images=n, gflop_per_image=gf,
                   matmul_fp32_gflops=g32, matmul_bf16_gflops=g16, fp32_img_s=r32, fp32_of_fp32_ceiling=r32 * gf / g32,
                   bf16_img_s=r16, bf16_of_bf16_ceiling=r16 * gf / g16, bf16_speedup=r16 / r32,
                   same_keypoints_min=agree[:, 0].min(), cosine_p5_min=agree[:, 1].min(), rootsift_img_s=rs,
                   threads=torch.get_num_threads(), load_average=load)
        rows.append(row)
        print(f"{size:>5} {gf:>9.1f} {g32:>9.1f} {g16:>9.1f} {r32:>10.3f} {row['fp32_of_fp32_ceiling']:>12.0%} "
              f"{r16:>10.3f} {row['bf16_of_bf16_ceiling']:>12.0%} {r16 / r32:>7.2f}x {agree[:, 0].min():>8.3f} "
              f"{agree[:, 1].min():>7.4f} {rs:>10.1f}", flush=True)
    os.makedirs(os.path.dirname(a.out) or '.', exist_ok=True)
    pd.DataFrame(rows).to_csv(a.out, index=False, float_format='%.4g')
    print(f'wrote {a.out}')


if __name__ == '__main__': main()
