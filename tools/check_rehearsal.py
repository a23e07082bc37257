"""Check a `gld-mini` rehearsal (`make rehearse`): every report stage ran under the gld-mini parameters (gld's, but
for the keys gld-mini overrides), on data that `landmarks download gld-v2` fetched from the loopback bucket, and the
tables and Figure 1 have their rows and pixels. Prints one `rehearsal check: PASS|FAIL ...` line; exit 1 on FAIL.

    python tools/check_rehearsal.py [OUT]     # OUT: the report folder (default reports/gld-mini)
"""
import json, sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from landmarks.runner import load_profiles, stage_params, stages  # noqa: E402

PROFILE = 'gld-mini'
TABLE1_ROWS = [('resnet18', 'frozen'), ('resnet50', 'frozen'), ('resnet50', 'finetune')]
TABLE2_ROWS = {'Random', 'PCA-10 KD-tree', 'PCA-10 KD-tree tuned', 'PCA-40 IVF-PQ + RANSAC'}
FIGURES = ('figure1_good.png', 'figure1_spurious.png')


def problems(out:Path) -> list:
    "What is wrong with the rehearsal in `out` (empty: nothing)."
    bad, profs, nbs = [], load_profiles(), ROOT/'nbs'
    for nb in stages(nbs):
        stamp = out/'.stamps'/f'{nb.stem}.json'
        if not (out/nb.name).exists() or not stamp.exists():
            bad.append(f'{nb.stem}: did not run (no {out/nb.name} or stamp)')
            continue
        ran = json.loads(stamp.read_text())['params']
        want = json.loads(json.dumps(stage_params(profs, PROFILE, nb, out, nbs)))
        if ran != want:
            diff = sorted(k for k in set(ran) | set(want) if ran.get(k) != want.get(k))
            bad.append(f'{nb.stem}: ran with other parameters than [{PROFILE}] gives ({", ".join(diff)})')
    data = Path(profile_dataset(profs, nbs))
    info = data/'download_v2.json'
    if not info.exists(): bad.append(f'{data}: not fetched by landmarks download gld-v2 (no download_v2.json)')
    else:
        d = json.loads(info.read_text())
        if d['failed'] or not d['shards_done']: bad.append(f'{info}: {d["shards_done"]} shards, failed {d["failed"]}')
        if not d['settings']['base_url'].startswith('http://127.0.0.1:'):
            bad.append(f'{info}: fetched from {d["settings"]["base_url"]}, not the loopback bucket')
    tables = out/'tables'
    t1, t2 = tables/'table1_recognition.csv', tables/'table2_retrieval.csv'
    if not t1.exists(): bad.append(f'{t1}: missing')
    else:
        t = pd.read_csv(t1)
        if list(zip(t.model.str.lower(), t['mode'])) != TABLE1_ROWS or not t.test_acc.between(0, 1).all():
            bad.append(f'{t1}: rows {list(zip(t.model, t["mode"]))}, test_acc {t.test_acc.tolist()}')
    if not t2.exists(): bad.append(f'{t2}: missing')
    else:
        t = pd.read_csv(t2)
        if not TABLE2_ROWS <= set(t.method) or not t.map100.between(0, 1).all():
            lack = sorted(TABLE2_ROWS - set(t.method))
            bad.append(f'{t2}: rows {sorted(t.method)} lack {lack} or mAP@100 outside [0, 1]')
    for f in FIGURES:
        p = out/'figures'/f
        if not p.exists() or p.stat().st_size < 1000: bad.append(f'{p}: missing or empty')
    tim = out/'timings.csv'
    if not tim.exists() or 'prepare' not in set(pd.read_csv(tim).stage):
        bad.append(f'{tim}: no prepare row (the fetch did not run through the runner)')
    return bad


def profile_dataset(profs, nbs) -> Path:
    "The dataset folder of the profile, resolved as the runner resolves it (relative to nbs/)."
    return (nbs/profs[PROFILE]['dataset']).resolve()


if __name__ == '__main__':
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT/'reports'/PROFILE).resolve()
    bad = problems(out)
    if bad:
        print(f'rehearsal check: FAIL ({len(bad)} problem(s) in {out})')
        for b in bad: print(f'  {b}')
        sys.exit(1)
    import torch
    tim = pd.read_csv(out/'timings.csv')
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    print(f'rehearsal check: PASS (device {device}): {len(stages(ROOT/"nbs"))} notebooks ran under [{PROFILE}] '
          "(gld's sections), tables 1 and 2 and Figure 1 written from the loopback GLD v2 download; stage times sum "
          f'to {tim.seconds.sum() / 60:.1f} minutes ({out/"timings.csv"})')
