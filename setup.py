"""The C extensions: the detectors' per-term and per-scale loops (detectors/_*.c).

Everything else about the package is declared in pyproject.toml.
"""

from setuptools import Extension, setup

# no fused multiply-add: the C loops must give the same floats as the Python they replaced
# (and the checkpoints and verdicts the same on every CPU)
STRICT_FLOATS = ["-ffp-contract=off"]

setup(
    ext_modules=[
        Extension(f"detectors.{name}", [f"detectors/{name}.c"], extra_compile_args=STRICT_FLOATS)
        for name in ("_termtable", "_scales", "_round")
    ]
)
