"""Command-line arguments every stage test passes (the tiny VSL-layout dataset of conftest.py)."""

from pathlib import Path


def common(data: Path, ck: Path) -> list[str]:
    """``--dataset VSL --data_root DATA --checkpoints CK --verbose 0``."""
    return [
        "--dataset",
        "VSL",
        "--data_root",
        str(data),
        "--checkpoints",
        str(ck),
        "--verbose",
        "0",
    ]
