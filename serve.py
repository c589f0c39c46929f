#!/usr/bin/env python
"""Serve a page that names the action of an uploaded clip or of the webcam, live.

The page shows the top-5 classes of a fusion run as bars: for a video clip you upload (with its
sensor recording, if you have one), and for the webcam, whose frames stream over a WebSocket and
are predicted on a sliding window of the run's clip length. Listens on 127.0.0.1 (this machine
only) unless --host says otherwise.

Usage:
    python serve.py checkpoints/<dataset>/fusion/latest [--port 8000] [--max_upload_mb 50]
    python serve.py checkpoints/<dataset>/fusion/<run> --sensor clip.csv --host 0.0.0.0
then open http://127.0.0.1:8000/ in a browser.
"""

import sys

from vsfusion.cli import run_cli
from vsfusion.config import ServeConfig


def main(argv: list[str] | None = None) -> int:
    from vsfusion.stages.serve import run_serve

    return run_cli(ServeConfig, run_serve, argv)


if __name__ == "__main__":
    sys.exit(main())
