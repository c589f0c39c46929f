"""Write train.csv / test.csv (file,label,subject) for a processed dataset folder.

Usage:
    # rel paths look like <split>/<label>/<name>.npy
    python utils/make_csv.py data/MYSET
    # or take labels/subjects from the rel paths with regexes and choose test subjects
    python utils/make_csv.py data/VSL --label-regex '(?P<label>[^/]+)/' \
        --subject-regex 'signer(?P<subject>\\d+)' --test-subjects 3 7
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vsfusion.data.errors import DataError  # noqa: E402
from vsfusion.data.processed import make_split_csvs  # noqa: E402

__all__ = ["main", "parse_args"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line.

    Args:
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The parsed namespace.

    Example:
        >>> parse_args(["data/X", "--test-subjects", "3", "7"]).test_subjects
        ['3', '7']
    """
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path, help="processed dataset root (video/, sensor/)")
    p.add_argument("--label-regex", help="regex with a 'label' group (or group 1) on rel paths")
    p.add_argument("--subject-regex", help="regex with a 'subject' group (or group 1)")
    p.add_argument("--test-subjects", nargs="*", default=[], help="subjects for test.csv")
    p.add_argument("--val-subjects", nargs="*", default=[], help="subjects for val.csv")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 bad input).

    Example:
        >>> main(["data/MYSET"])  # doctest: +SKIP
        0
    """
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        make_split_csvs(
            args.root,
            label_regex=args.label_regex,
            subject_regex=args.subject_regex,
            test_subjects=args.test_subjects,
            val_subjects=args.val_subjects,
        )
    except DataError as e:
        logging.getLogger("make_csv").error("%s", e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
