"""Rewrap the `__all__` that nbdev_export writes into each module within 120 columns (nbdev wraps the list at 120
and then prefixes `__all__ = `, so its first line can reach 130). Idempotent; `make export` runs it after
nbdev_export, and so does the last (hidden) cell of every notebook."""
import ast, re
from pathlib import Path
from textwrap import TextWrapper

root = Path(__file__).resolve().parents[1]
ALL = re.compile(r'^__all__ = \[.*?\]$', re.M | re.S)
wrap = TextWrapper(width=120, initial_indent='__all__ = ', subsequent_indent=' ' * 11, break_long_words=False)


def rewrap(text:str) -> str:
    "`text` with its first top-level `__all__ = [...]` rewrapped within 120 columns."
    m = ALL.search(text)
    if not m: return text
    names = ast.literal_eval(m[0].split('=', 1)[1].strip())
    return text[:m.start()] + '\n'.join(wrap.wrap(str(names))) + text[m.end():]


if __name__ == '__main__':
    for p in sorted((root/'landmarks').glob('*.py')):
        if p.name.startswith('_'): continue
        old = p.read_text()
        new = rewrap(old)
        if new != old: p.write_text(new)
