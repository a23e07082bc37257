"""Packaging for landmarks: every field nbdev's pyproject.toml marks dynamic is filled from settings.ini."""
from configparser import ConfigParser
from pathlib import Path
import setuptools

here = Path(__file__).parent
config = ConfigParser(delimiters=['='])
config.read(here/'settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
lic = licenses[cfg['license']]
# Core runtime dependencies; exact pins for a reproducible environment live in requirements.txt.
requirements = ['torch', 'torchvision', 'numpy', 'scipy', 'pandas', 'scikit-learn', 'scikit-image', 'matplotlib',
                'faiss-cpu', 'opencv-python-headless', 'h5py', 'tqdm', 'pillow', 'fastcore<2', 'papermill', 'nbformat', 'tabulate']
extras = {'tfhub': ['tensorflow-cpu'],
          'dev': ['nbdev==2.4.14', 'execnb<0.2', 'pytest', 'hypothesis', 'jupyterlab', 'ipykernel', 'nbconvert']}
scripts = [s.strip() for s in cfg.get('console_scripts', '').split('\n') if s.strip()]

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=(here/'README.md').read_text(encoding='utf-8') if (here/'README.md').exists() else cfg['description'],
    long_description_content_type='text/markdown',
    keywords=cfg['keywords'],
    license=lic[0],
    author=cfg['author'], author_email=cfg['author_email'],
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'License :: ' + lic[1],
                 'Natural Language :: ' + cfg['language'].title(),
                 'Programming Language :: Python :: 3.11'],
    url=cfg['git_url'],
    project_urls={'Source': cfg['git_url'], 'Documentation': cfg['doc_host'] + cfg['doc_baseurl']},
    packages=setuptools.find_packages(include=['landmarks', 'landmarks.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require=extras,
    python_requires='>=' + cfg['min_python'],
    zip_safe=False,
    entry_points={'console_scripts': scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
)
