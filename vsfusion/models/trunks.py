"""Trunks for sequence streams by name: what ``train_stream.py`` builds for a stream's kind.

A modality spec names its default trunk (:attr:`vsfusion.data.modality.Modality.trunk`); this
registry turns the name into a classifier (trunk + head, see :mod:`vsfusion.models.heads`) for
one stream. Video kinds use the video backbones of :mod:`vsfusion.models.backbones` instead
(``train_video.py``).

A builder takes ``(input_shape, num_classes, *, input_name, dropout, normalization, attrs,
width)``: ``input_shape`` is one sample's shape, ``input_name`` the stream's column (the model's
input is named after it so a dict batch feeds it), ``normalization`` per-channel ``(mean,
variance)`` of the training data, ``attrs`` the stream's declared attributes (e.g. a skeleton's
``layout``) and ``width`` a size knob the trunk may use (``None``: its default).

Example:
    >>> clf = TRUNKS["inception_time"]((50, 6), 4, input_name="imu", dropout=0.1,
    ...                                normalization=None, attrs={}, width=None)
    >>> clf.input_shape, clf.output_shape
    ((None, 50, 6), (None, 4))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras

from vsfusion.models.sensor import build_inception_time

__all__ = ["TRUNKS", "register_trunk", "trunk_builder"]

TrunkBuilder = Callable[..., keras.Model]


def _inception_time(
    input_shape: Sequence[int | None],
    num_classes: int,
    *,
    input_name: str,
    dropout: float,
    normalization: tuple[Any, Any] | None,
    attrs: Mapping[str, Any],
    width: int | None,
) -> keras.Model:
    return build_inception_time(
        tuple(input_shape),
        num_classes=num_classes,
        dropout=dropout,
        filters=width or 32,
        normalization=normalization,
        input_name=input_name,
        name=f"{input_name}_inception_time",
    )


def _stgcn(
    input_shape: Sequence[int | None],
    num_classes: int,
    *,
    input_name: str,
    dropout: float,
    normalization: tuple[Any, Any] | None,
    attrs: Mapping[str, Any],
    width: int | None,
) -> keras.Model:
    from vsfusion.models.stgcn import build_stgcn

    if not attrs.get("layout"):
        raise ValueError(
            "the stgcn trunk needs the skeleton's joint layout: declare the stream's 'layout' "
            "(e.g. kinect-v1) in the dataset adapter"
        )
    kw: dict[str, Any] = {}
    if width:  # the default block widths scaled so that the last block has ``width`` channels
        kw["channels"] = tuple(max(8, width * c // 128) for c in (32, 32, 64, 64, 128, 128))
    return build_stgcn(
        tuple(input_shape),
        layout=attrs["layout"],
        num_classes=num_classes,
        dropout=dropout,
        input_name=input_name,
        name=f"{input_name}_stgcn",
        **kw,
    )


TRUNKS: dict[str, TrunkBuilder] = {"inception_time": _inception_time, "stgcn": _stgcn}
"""Trunk name -> classifier builder (see the module docstring)."""


def register_trunk(name: str, builder: TrunkBuilder, *, replace: bool = False) -> TrunkBuilder:
    """Add a classifier builder to :data:`TRUNKS` under ``name`` and return it."""
    if name in TRUNKS and not replace:
        raise ValueError(f"trunk {name!r} is already registered; pass replace=True")
    TRUNKS[name] = builder
    return builder


def trunk_builder(name: str) -> TrunkBuilder:
    """The builder registered as ``name``; a ``ValueError`` lists the known trunks."""
    try:
        return TRUNKS[name]
    except KeyError:
        raise ValueError(
            f"unknown trunk {name!r}; known trunks: {', '.join(sorted(TRUNKS))}"
        ) from None
