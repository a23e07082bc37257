"""Give every notebook under nbs/ the python3 kernelspec (papermill needs the kernel name and language)."""
import json
from pathlib import Path
spec = {'display_name': 'python3', 'language': 'python', 'name': 'python3'}
for p in sorted(Path(__file__).resolve().parents[1].glob('nbs/*.ipynb')):
    nb = json.loads(p.read_text())
    ks = nb.get('metadata', {}).get('kernelspec') or {}
    if ks.get('name') != 'python3' or ks.get('language') != 'python':
        nb.setdefault('metadata', {})['kernelspec'] = spec
        p.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n')
        print('kernelspec added:', p.name)
