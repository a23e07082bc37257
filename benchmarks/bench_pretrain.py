"""The stand-in pretraining schedule, chosen on validation: source epochs vs. Table 1's validation accuracy.

The cpu profile has no ImageNet weights, so 02_transfer first trains each backbone from nothing on other
SynthLandmarks landmarks (the "source"). How many source epochs? This benchmark trains the stand-in for each
number of epochs in a grid, then trains Table 1's three models on the target's TRAINING images exactly as the cpu
profile does, and records their accuracy on the validation split that `train` holds out of the training images
(never the test images). `landmarks.transfer.choose_source_epochs` reads the CSV and picks the smallest schedule
whose mean validation accuracy is within one standard error of the best; profiles.toml's cpu `source_epochs` is
that choice, and 02_transfer checks it.

    .venv/bin/python benchmarks/bench_pretrain.py                        # writes benchmarks/results/pretrain.csv
    .venv/bin/python benchmarks/bench_pretrain.py --epochs 2,4 --out /tmp/pretrain.csv
"""
import landmarks  # noqa: F401  (triton before tensorflow)
import argparse
import os
import sys
import tempfile
from pathlib import Path

import pandas as pd

from landmarks.data import atomic_path, dataset_root, load_gld, train_val_split
from landmarks.runner import load_profiles, machine, profile_params
from landmarks.transfer import train

RUNS = [('resnet18', 'frozen'), ('resnet50', 'frozen'), ('resnet50', 'finetune')]   # Table 1's rows


def write_csv(rows, out):
    "The rows so far, written atomically."
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--epochs', default='2,4,8,16', help='source epochs to try (comma-separated)')
    ap.add_argument('--profile', default='cpu', help='the profiles.toml profile whose 02_transfer settings are used')
    ap.add_argument('--work', default=None, help='scratch folder for checkpoints (default: a temporary folder)')
    ap.add_argument('--data-dir', default='data')
    ap.add_argument('--out', default='benchmarks/results/pretrain.csv')
    ap.add_argument('--threads', type=int, default=None, help="torch threads (default: the profile's)")
    a = ap.parse_args()
    p = profile_params(load_profiles(), a.profile, '02_transfer')
    threads = a.threads or p.get('threads', 2)
    common = dict(momentum=0.9, weight_decay=1e-4, seed=0, workers=0, threads=threads, amp=p.get('amp'),
                  keep=1, progress=False, image_size=p['image_size'], crop_size=p['crop_size'])
    source = load_gld(dataset_root(p['source_dataset'], a.data_dir))
    target = load_gld(dataset_root(p['dataset'], a.data_dir))
    work = Path(a.work or tempfile.mkdtemp(prefix='bench_pretrain_'))
    n_val = len(train_val_split(target.train, 1/3, 0, copies_dir=work/'val_copies')[1])
    command = 'python benchmarks/bench_pretrain.py ' + ' '.join(sys.argv[1:])
    rows = []
    out = Path(a.out)
    for n in [int(e) for e in a.epochs.split(',')]:
        for arch in ('resnet18', 'resnet50'):
            init = train(source, work/f'source{n}', arch, 'finetune', 'none', n, lr=p['lr_source'], **common)
            src = pd.read_csv(init.parent/'metrics.csv')           # training time summed over epochs (resumable)
            for mode in [m for a_, m in RUNS if a_ == arch]:
                lr = p['lr_finetune'] if mode == 'finetune' else p['lr_frozen']
                ck = train(target, work/f'target{n}', arch, mode, str(init), p['epochs'], lr=lr, **common)
                m = pd.read_csv(ck.parent/'metrics.csv')
                rows.append(dict(source_epochs=n, arch=arch, mode=mode, source_val_acc=src.val_acc.iloc[-1],
                                 val_acc=m.val_acc.iloc[-1], n_val=n_val, source_minutes=src.seconds.sum() / 60,
                                 target_minutes=m.seconds.sum() / 60, cpu_model=machine()['cpu_model'],
                                 threads=threads, load_average=os.getloadavg()[0], command=command))
                print(rows[-1], flush=True)
                write_csv(rows, out)              # after every run: a stopped benchmark keeps what it measured
    print(pd.DataFrame(rows).drop(columns=['command', 'cpu_model']).to_string(index=False))
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
