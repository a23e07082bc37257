"""Copy a profile's regenerated tables (with their captions), Figure 1 and stage times into README.md between the
tables markers: `python tools/readme_tables.py [profile]` after `make report` (default profile: cpu)."""
import sys
from pathlib import Path

import pandas as pd

root = Path(__file__).resolve().parents[1]
profile = sys.argv[1] if len(sys.argv) > 1 else 'cpu'
out = root/'reports'/profile
parts = []
TABLES = (('table1_recognition', 'Table 1: recognition'), ('table2_retrieval', 'Table 2: retrieval (mAP@100)'))
for name, title in TABLES:
    f = out/'tables'/f'{name}.md'
    if f.exists(): parts.append(f'### {title}\n\n{f.read_text().strip()}\n')
for fig in sorted((root/'figures').glob('figure1*.png')):
    parts.append(f'![{fig.stem}](figures/{fig.name})\n')
timings = out/'timings.csv'
if timings.exists():
    t = pd.read_csv(timings)
    longest = ', '.join(f'{r.stage} {r.seconds / 60:.1f}' for r in t.nlargest(3, 'seconds').itertuples())
    reused = f'; {int(t.skipped.sum())} of them reused from an earlier run' if t.skipped.any() else ''
    machine = f'{t.cpu_model.iloc[0]} ({t.threads.iloc[0]} CPUs)'
    parts.append(f'Stage times (`reports/{profile}/timings.csv`): {t.seconds.sum() / 60:.1f} minutes for the '
                 f'{len(t)} stages on {machine}, install excluded{reused}; the longest (minutes): {longest}.\n')
readme = (root/'README.md').read_text()
head, rest = readme.split('<!-- tables:begin -->', 1)
_, tail = rest.split('<!-- tables:end -->', 1)
body = '\n'.join(parts) if parts else '*Run `make report` to regenerate the tables.*\n'
(root/'README.md').write_text(f'{head}<!-- tables:begin -->\n{body}<!-- tables:end -->{tail}')
print(f'README.md: {len(parts)} tables/figures/timings from {out}')
