"""Preprocess a folder of videos into the processed layout: ``DST/video/<rel>.npy``.

Usage:
    python utils/videoprocess.py raw/VSL data/VSL --num-frames 32 --size 128 --workers 2

The work is :func:`vsfusion.data.processed.prepare_videos`, i.e. the one preparation engine
:func:`vsfusion.data.cache.build_cache`: re-running resumes (finished clips are skipped), every
file is written atomically, ``DST/manifest.csv`` is written last. Exit status 1 when some videos
failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vsfusion.data.errors import DataError  # noqa: E402
from vsfusion.data.processed import prepare_videos  # noqa: E402
from vsfusion.data.video import VIDEO_PATTERNS  # noqa: E402

__all__ = ["main", "parse_args"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The parsed namespace.

    Example:
        >>> parse_args(["raw", "out", "--size", "112"]).size
        112
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("src", type=Path, help="folder searched recursively for videos")
    p.add_argument("dst", type=Path, help="output root; clips go to DST/video/<rel>.npy")
    p.add_argument("--num-frames", type=int, default=32, help="frames per clip (default 32)")
    p.add_argument("--size", type=int, default=128, help="square frame side (default 128)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument(
        "--pattern", default=VIDEO_PATTERNS, help=f"file patterns (default {VIDEO_PATTERNS!r})"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="only log warnings and errors")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 some videos failed, 2 bad arguments).

    Example:
        >>> main(["raw/VSL", "data/VSL", "--workers", "2"])  # doctest: +SKIP
        0
    """
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s"
    )
    try:
        res = prepare_videos(
            args.src,
            args.dst,
            num_frames=args.num_frames,
            size=args.size,
            workers=args.workers,
            pattern=args.pattern,
        )
    except DataError as e:
        logging.getLogger("videoprocess").error("%s", e)
        return 2
    failed = res.attrs.get("failed", {})
    for sid, err in sorted(failed.items()):
        logging.getLogger("videoprocess").error("failed %s: %s", sid, err)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
