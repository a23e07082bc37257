"""Recognition throughput: training and inference images/s of ResNet18 and ResNet50, beside the FLOP ceiling.

The ceiling is the machine's measured matmul rate (GFLOP/s, torch fp32, or fp16 on CUDA) divided by the model's
FLOPs per image (counted by torch's FlopCounterMode: forward for inference, forward + backward for training).

    .venv/bin/python benchmarks/bench_recognition.py                  # CPU, 64 px crops, float32
    .venv/bin/python benchmarks/bench_recognition.py --size 48 --batch 64 --bf16   # the cpu profile's setting
    .venv/bin/python benchmarks/bench_recognition.py --size 224 --device cuda --batch 128
"""
import landmarks  # noqa: F401  (triton before tensorflow)
import argparse, time

import torch, torchvision
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode


def matmul_gflops(device, dtype, n=2048, seconds=2.0):
    "Measured dense matmul rate of `device` in GFLOP/s (2 n^3 per product)."
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    for _ in range(2): a @ b
    sync()
    t, reps = time.perf_counter(), 0
    while time.perf_counter() - t < seconds:
        a @ b
        reps += 1
    sync()
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def flops_per_image(model, size, train):
    "FLOPs of one image through `model` (forward, or forward + backward when `train`)."
    x = torch.randn(2, 3, size, size)
    with FlopCounterMode(display=False) as fc:
        if train: F.cross_entropy(model(x), torch.zeros(2, dtype=torch.long)).backward()
        else:
            with torch.no_grad(): model(x)
    model.zero_grad(set_to_none=True)
    return fc.get_total_flops() / 2


def throughput(model, size, batch, iters, train, device, amp, dtype=None):
    "Images per second for `iters` timed batches after one warm-up batch (bfloat16: channels-last, as `train` does)."
    layout = torch.channels_last if dtype == torch.bfloat16 else torch.contiguous_format
    model.to(device, memory_format=layout).train(train)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, size, size, device=device).to(memory_format=layout)
    y = torch.randint(0, model.fc.out_features, (batch,), device=device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=amp), torch.set_grad_enabled(train):
            out = model(x)
            if train:
                loss = F.cross_entropy(out.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    step()
    sync()
    t = time.perf_counter()
    for _ in range(iters): step()
    sync()
    return batch * iters / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--archs', default='resnet18,resnet50')
    ap.add_argument('--size', type=int, default=64,
                    help='crop size (the cpu profile trains at 64 px, the report at 224)')
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--iters', type=int, default=3)
    ap.add_argument('--classes', type=int, default=24, help='outputs of the head')
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: torch default)')
    ap.add_argument('--bf16', action='store_true', help="bfloat16 autocast, channels-last (train(amp='bf16'))")
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    amp = device.type == 'cuda' or a.bf16
    dtype = torch.bfloat16 if a.bf16 else torch.float16 if amp else torch.float32
    peak = matmul_gflops(device, dtype)
    name = (torch.cuda.get_device_name(device) if device.type == 'cuda'
            else f'CPU, {torch.get_num_threads()} torch threads')
    print(f'device: {name}; matmul {peak:.1f} GFLOP/s ({str(dtype).split(".")[1]}); crop {a.size} px, batch {a.batch}'
          f'{", AMP" if amp else ""}')
    print(f'{"model":<10} {"pass":<9} {"GFLOP/img":>9} {"img/s":>9} {"ceiling":>9} {"of ceiling":>10}')
    for arch in a.archs.split(','):
        torch.manual_seed(0)
        model = torchvision.models.get_model(arch, weights=None, num_classes=a.classes)
        for train in (True, False):
            g = flops_per_image(model, a.size, train) / 1e9
            ips = throughput(model, a.size, a.batch, a.iters, train, device, amp, dtype)
            model.cpu()
            ceiling = peak / g
            print(f'{arch:<10} {"training" if train else "inference":<9} {g:>9.3f} {ips:>9.1f} {ceiling:>9.1f} '
                  f'{ips / ceiling:>10.1%}', flush=True)


if __name__ == '__main__':
    main()
