#!/usr/bin/env python
"""Run the stages in order and write <out>/results.json and results.md, then print the table.

Usage: python reproduce.py --dataset demo --out runs/demo
       [--stages baselines,sensor,video,generator,fusion]
       [--preset fast|paper] [--seed N | --seeds 0,1,2]
       python reproduce.py --aggregate FUSION_RUN,FUSION_RUN,... --out DIR   (mean ± sd, pooled McNemar)
"""

import sys
from pathlib import Path

from vsfusion.cli import run_cli
from vsfusion.config import ReproduceConfig


def _run_and_print(cfg: ReproduceConfig) -> None:
    from vsfusion.stages.reproduce import run_reproduce

    run_reproduce(cfg)
    seeds = cfg.seeds or cfg.aggregate
    print((Path(cfg.out) / ("results_seeds.md" if seeds else "results.md")).read_text())


def main(argv: list[str] | None = None) -> int:
    return run_cli(ReproduceConfig, _run_and_print, argv)


if __name__ == "__main__":
    sys.exit(main())
