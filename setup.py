"""The one C extension, the emerging-term detector's per-term loops (detectors/_termtable.c).

Everything else about the package is declared in pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("detectors._termtable", ["detectors/_termtable.c"])])
