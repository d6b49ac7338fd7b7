"""Side-by-side benchmarks against reference libraries.

A suite is a module ``bench/suite_<name>.py`` with ``run(input=None, meta=None) -> list[Row]``
and a docstring. ``edge-agent bench NAME`` runs every suite whose name starts with NAME.
Both sides are measured in the same run, on the same data; JIT warm-up is excluded from the
timings and reported as its own row. Benchmarks never fail on a slow machine: they report.
"""

from bench._harness import Row, measure, ratio_row, suite_modules

__all__ = ["Row", "measure", "ratio_row", "suite_modules"]
