"""Make nbdev 2.4.14's `nbdev_export` write `__all__` within 120 columns (run by `make install`; idempotent).

nbdev wraps the list of names at 120 columns and only then prefixes `__all__ = `, so the first line of a module's
`__all__` can reach 130 columns and the ruff gate of `make test` (E501 at 120) fails on nbdev's own output. This
counts the prefix in the wrap, so a plain `nbdev_export` (and the export cell that ends every notebook) leaves the
committed modules unchanged. It touches only the pinned version's known line and refuses anything else."""
import sys
from pathlib import Path

import nbdev
import nbdev.maker

OLD = ("        tw = TextWrapper(width=120, initial_indent='', subsequent_indent=' '*11, break_long_words=False)\n"
       "        all_str = '\\n'.join(tw.wrap(str(_all)))\n")
NEW = ("        tw = TextWrapper(width=120, initial_indent='__all__ = ', "
       "subsequent_indent=' '*11, break_long_words=False)  # landmarks: tools/patch_nbdev.py\n"
       "        all_str = '\\n'.join(tw.wrap(str(_all)))[len('__all__ = '):]\n")

if __name__ == '__main__':
    path = Path(nbdev.maker.__file__)
    src = path.read_text()
    if NEW in src: sys.exit(0)
    if nbdev.__version__ != '2.4.14' or src.count(OLD) != 1:
        sys.exit(f'tools/patch_nbdev.py: {path} (nbdev {nbdev.__version__}) is not the nbdev 2.4.14 it patches; '
                 'pin nbdev==2.4.14 (requirements.txt) or update this patch')
    path.write_text(src.replace(OLD, NEW))
    print(f'patched {path}: __all__ wrapped within 120 columns')
