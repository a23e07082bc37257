"""Copy the cpu profile's regenerated tables and Figure 1 into README.md between the tables markers."""
import sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
tables = root/'reports'/(sys.argv[1] if len(sys.argv) > 1 else 'cpu')/'tables'
parts = []
for name, title in (('table1_recognition', 'Table 1: recognition'), ('table2_retrieval', 'Table 2: retrieval (mAP@100)')):
    f = tables/f'{name}.md'
    if f.exists(): parts.append(f'### {title}\n\n{f.read_text().strip()}\n')
for fig in sorted((root/'figures').glob('figure1*.png')):
    parts.append(f'![{fig.stem}](figures/{fig.name})\n')
readme = (root/'README.md').read_text()
head, rest = readme.split('<!-- tables:begin -->', 1)
_, tail = rest.split('<!-- tables:end -->', 1)
body = '\n'.join(parts) if parts else '*Run `make report` to regenerate the tables.*\n'
(root/'README.md').write_text(f'{head}<!-- tables:begin -->\n{body}<!-- tables:end -->{tail}')
print(f'README.md: {len(parts)} tables/figures from {tables}')
