"""Benchmarks of the template and the services it renders: `python bench/run.py`."""

import sys
from pathlib import Path

# The sections drive rendered services with the template tests' helpers (tests/helpers.py).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
