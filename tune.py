#!/usr/bin/env python
"""Hyper-parameter search of a classifier stage on the validation split (KerasTuner).

Usage: python tune.py --stage sensor --trials 6 --tuner random [--space lr=1e-4:1e-2:log,...]
       python tune.py --help
"""

import sys


def main(argv: list[str] | None = None) -> int:
    from vsfusion.stages.tune import main as tune_main

    return tune_main(argv)


if __name__ == "__main__":
    sys.exit(main())
