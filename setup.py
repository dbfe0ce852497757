"""The C extensions: every ``detectors/_*.c`` (hot loops and display rounding), one module each.

Everything else about the package is declared in pyproject.toml.
"""

from pathlib import Path

from setuptools import Extension, setup

# no fused multiply-add: the C loops must give the same floats as the Python they replaced
# (and the checkpoints and verdicts the same on every CPU)
STRICT_FLOATS = ["-ffp-contract=off"]

setup(
    ext_modules=[
        Extension(f"detectors.{c.stem}", [c.as_posix()], extra_compile_args=STRICT_FLOATS)
        for c in sorted(Path("detectors").glob("_*.c"))
    ]
)
