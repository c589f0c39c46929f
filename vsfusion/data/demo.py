"""demo: a small synthetic video + wrist-IMU dataset, generated on demand, physically consistent.

Each sample is one gesture performed by one synthetic subject: a hand-like blob (a skin-coloured
ellipse with a darker "thumb" spot, so that wrist roll is faintly visible) moving over a textured,
subject-specific background, seen by a fixed camera, while a 6-axis IMU on the wrist records the
*same* motion. The hand's path ``p(t)`` (metres, in the camera-facing plane, plus a small depth
component) and its orientation (roll ``theta(t)`` about the forearm, which points towards the camera,
and pitch ``phi(t)`` of the forearm, which follows the hand's height) are smooth analytic functions
of time: sums of sinusoids under a C2 window, so the hand is still at the start and at the end of
every clip. The video samples that motion at ``num_frames`` instants and renders it with
anti-aliased ``cv2`` drawing; the sensor samples it at ``sensor_steps`` instants over the same
duration:

* accelerometer (m/s^2, gravity included, wrist frame): ``R^T (p''(t) + [0, g, 0])`` with
  ``R = R_x(phi) R_z(theta)`` (world from wrist; world x right, y up, z towards the camera);
* gyroscope (rad/s, wrist frame): ``R_z(theta)^T [phi', 0, 0] + [0, 0, theta']``;

plus white noise, a per-subject bias and a small per-subject mounting misalignment (all scaled by
``noise``; ``noise=0`` gives the exact kinematics). The lever arm between the roll axis and the
sensor is ignored.

Classes are built so that the two modalities are complementary:

* clearly different paths (visible in both): horizontal swipe, vertical swipe, circle, wave,
  figure of eight;
* pairs that differ by a cue strong in the sensor but weak in video: ``swipe_horizontal`` vs
  ``swipe_horizontal_twist`` (a fast wrist twist: large in the gyroscope, a few pixels of thumb
  motion in video, aliased at 8 fps) and ``swipe_vertical`` vs ``swipe_vertical_tap`` (a small fast
  tapping towards the camera: about 10 m/s^2, but a sub-pixel change of the hand's size);
* a pair that video separates easily but the sensor only weakly: ``circle_high`` vs
  ``circle_low`` (the same circle above or below the frame centre; the accelerometer sees only the
  slightly different forearm pitch through gravity, blurred by per-subject posture).

Nothing depends on the class except the motion: subjects, backgrounds, colours and brightness are
drawn independently of the label, and every subject performs every class ``reps`` times.
Horizontal mirroring (the video stage's ``flip`` augmentation) maps every class onto itself: the
circle and figure-of-eight directions are random per sample.

Facts (defaults): 8 classes, 8 subjects (``s01`` .. ``s08``), 4 repetitions, 256 samples; video
16 frames of 64x64 RGB over 2 s (8 fps); sensor 128 steps over 2 s (64 Hz), 6 channels
``acc_x, acc_y, acc_z`` (m/s^2) and ``gyro_x, gyro_y, gyro_z`` (rad/s). Protocol: cross-subject,
the last third of the subjects (rounded: ``s06``, ``s07``, ``s08``, 96 samples) are the test set;
there is no ``val.csv``, the toolkit carves validation subjects from the training subjects (with
the default ``val_fraction`` 0.25, one of ``s01``-``s05``: 128 training and 32 validation
samples).

Layout written (the processed layout of ``docs/architecture.md``)::

    ROOT/
      video/<subject>/<class>_<rep>.npy    uint8   (num_frames, size, size, 3)
      sensor/<subject>/<class>_<rep>.npy   float32 (sensor_steps, 6)
      train.csv, test.csv                  file,label,subject
      manifest.csv                         file,label,subject,split
      demo.json                            generation parameters, seed, format version (written last)

Example:
    >>> from vsfusion.data import demo
    >>> manifest = demo.load("data/demo", seed=0)  # doctest: +SKIP
    >>> manifest.summary()["classes"]  # doctest: +SKIP
    8
    >>> s = demo.synthesize("circle_low", subject=0, rep=0)
    >>> s.video.shape, s.sensor.shape
    ((16, 64, 64, 3), (128, 6))
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from vsfusion.data.errors import DataError
from vsfusion.data.io import TMP_SUFFIX, atomic_save_npy, atomic_write_text
from vsfusion.data.processed import ProcessedLayout, write_split_csvs

__all__ = [
    "Demo",
    "CLASSES",
    "DEFAULT_ROOT",
    "DURATION_S",
    "FIELD_OF_VIEW_M",
    "FORMAT_VERSION",
    "GRAVITY",
    "MODALITIES",
    "NAME",
    "NUM_FRAMES",
    "NUM_REPS",
    "NUM_SUBJECTS",
    "PROTOCOL",
    "SENSOR_CHANNELS",
    "SENSOR_UNIT_CHANNELS",
    "SENSOR_RATE_HZ",
    "SENSOR_STEPS",
    "SIZE",
    "VIDEO_FPS",
    "DemoSample",
    "generate",
    "is_current",
    "load",
    "render_preview",
    "subject_names",
    "synthesize",
]

log = logging.getLogger(__name__)

NAME = "demo"
FORMAT_VERSION = 1
"""Bumped whenever the generator's output changes; a different version triggers regeneration."""
CLASSES: tuple[str, ...] = (
    "circle_high",
    "circle_low",
    "figure_eight",
    "swipe_horizontal",
    "swipe_horizontal_twist",
    "swipe_vertical",
    "swipe_vertical_tap",
    "wave",
)
"""The 8 gesture classes (sorted)."""
MODALITIES: tuple[str, ...] = ("video", "sensor")
NUM_SUBJECTS = 8
NUM_REPS = 4
NUM_FRAMES = 16
SIZE = 64
SENSOR_STEPS = 128
DURATION_S = 2.0
VIDEO_FPS = NUM_FRAMES / DURATION_S
"""8 frames per second with the defaults."""
SENSOR_RATE_HZ = SENSOR_STEPS / DURATION_S
"""64 Hz with the defaults."""
SENSOR_CHANNELS: tuple[str, ...] = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
SENSOR_UNIT_CHANNELS = 6
"""Channels of one rigid unit (accelerometer xyz + gyroscope xyz), rotated together in augmentation."""
"""Accelerometer (m/s^2, gravity included) then gyroscope (rad/s), both in the wrist frame."""
GRAVITY = 9.81
FIELD_OF_VIEW_M = 0.8
"""Width (and height) of the camera's view in the hand's plane, in metres."""
PROTOCOL = (
    "cross-subject: the last third of the subjects form the test split; validation subjects are "
    "carved from the training subjects by the toolkit (no val.csv)"
)
DEFAULT_ROOT = Path("data") / "demo"

_CAMERA_DISTANCE_M = 0.7  # hand plane to camera; depth motion changes the apparent size
_HAND_RADIUS_M = 0.05
_PITCH_PER_M = 0.8  # forearm pitch (rad) per metre of hand height: the sensor's only height cue
_BG_MARGIN = 2
_LAYOUT_NAMES = {"video", "sensor", "train.csv", "test.csv", "manifest.csv", "demo.json"}


# ---------------------------------------------------------------------------------------------
# kinematics: analytic signals with exact first and second derivatives


def _smoothstep(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quintic smoothstep (C2) clipped to [0, 1] and its first two derivatives in ``x``."""
    x = np.clip(x, 0.0, 1.0)
    s = x**3 * (10 - 15 * x + 6 * x**2)
    s1 = 30 * x**2 * (1 - x) ** 2
    s2 = 60 * x * (1 - x) * (1 - 2 * x)
    return s, s1, s2


def _window(t: np.ndarray, t0: float, t1: float, ramp: float) -> np.ndarray:
    """C2 window: 0 before ``t0``, rises over ``ramp``, 1, falls to 0 at ``t1``; shape (3, n)."""
    a, a1, a2 = _smoothstep((t - t0) / ramp)
    b, b1, b2 = _smoothstep((t1 - t) / ramp)
    a1, a2 = a1 / ramp, a2 / ramp**2
    b1, b2 = -b1 / ramp, b2 / ramp**2
    return np.stack([a * b, a1 * b + a * b1, a2 * b + 2 * a1 * b1 + a * b2])


def _osc(t: np.ndarray, amp: float, freq: float, phase: float, env: np.ndarray) -> np.ndarray:
    """``env * amp * sin(2 pi freq t + phase)`` and its two derivatives; shape (3, n)."""
    w = 2 * np.pi * freq
    s, c = np.sin(w * t + phase), np.cos(w * t + phase)
    e, e1, e2 = env
    return amp * np.stack([e * s, e1 * s + e * w * c, e2 * s + 2 * e1 * w * c - e * w**2 * s])


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack(
        [np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2
    )


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack(
        [np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2
    )


def _rotvec_matrix(v: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (Rodrigues)."""
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    k = v / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


@dataclass(frozen=True)
class _Subject:
    """Everything that is fixed for one subject (drawn from ``(seed, subject)`` only)."""

    speed: float
    amplitude: float
    hand_scale: float
    hand_rgb: np.ndarray
    thumb_rgb: np.ndarray
    anchor: np.ndarray  # (2,) metres, habitual hand position
    pitch: float  # habitual forearm pitch (rad)
    roll: float  # habitual wrist roll (rad)
    acc_bias: np.ndarray
    gyro_bias: np.ndarray
    mount: np.ndarray  # (3, 3) sensor-from-wrist misalignment
    background: np.ndarray  # (size, size, 3) float32


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A subject's textured backdrop (``size + 2 * _BG_MARGIN`` square, float32): blurred colour
    noise, a few shapes and fine grain; each sample crops it at a small random offset."""
    size = size + 2 * _BG_MARGIN
    c0, c1 = rng.uniform(25, 115, 3), rng.uniform(25, 115, 3)
    coarse = cv2.resize(
        rng.random((6, 6)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC
    )
    coarse = np.clip(coarse, 0, 1)[..., None]
    img = (c0 * (1 - coarse) + c1 * coarse).astype(np.float32)
    for _ in range(4):
        col = tuple(float(v) for v in rng.uniform(20, 130, 3))
        x0, y0 = (rng.random(2) * size).astype(int)
        w, h = (rng.uniform(0.1, 0.4, 2) * size).astype(int)
        cv2.rectangle(img, (int(x0), int(y0)), (int(x0 + w), int(y0 + h)), col, -1, cv2.LINE_AA)
    grain = cv2.GaussianBlur(rng.normal(0, 10, (size, size, 3)).astype(np.float32), (0, 0), 0.8)
    return np.clip(img + grain, 0, 255).astype(np.float32)


def _subject(seed: int, index: int, size: int, noise: float) -> _Subject:
    rng = np.random.default_rng([seed, 0, index])
    tone = rng.uniform(0.75, 1.05)
    hand = np.array([226.0, 178.0, 146.0]) * tone + rng.normal(0, 6, 3)
    return _Subject(
        speed=float(rng.uniform(0.85, 1.2)),
        amplitude=float(rng.uniform(0.85, 1.15)),
        hand_scale=float(rng.uniform(0.9, 1.1)),
        hand_rgb=np.clip(hand, 0, 255),
        thumb_rgb=np.clip(hand * 0.62, 0, 255),
        anchor=rng.normal(0, 0.02, 2),
        pitch=float(rng.normal(0.15, 0.05)),
        roll=float(rng.normal(0.0, 0.08)),
        acc_bias=rng.normal(0, 0.06, 3) * noise,
        gyro_bias=rng.normal(0, 0.02, 3) * noise,
        mount=_rotvec_matrix(rng.normal(0, 0.04, 3) * noise),
        background=_background(rng, size),
    )


@dataclass(frozen=True)
class _Motion:
    """Per-sample motion parameters (drawn for every sample alike, whatever its class)."""

    label: str
    duration: float
    anchor: np.ndarray
    t_on: float
    t_off: float
    phase: float
    amp: float
    speed: float
    direction: float
    wobble: np.ndarray  # (3, 3): per axis (x, y, roll) amplitude, frequency, phase
    twist: tuple[float, float, float]
    tap: tuple[float, float, float, float, float]  # amplitude, frequency, phase, start, stop
    pitch_jitter: float


def _motion(rng: np.random.Generator, label: str, subj: _Subject, duration: float) -> _Motion:
    ramp_pad = rng.uniform(0.12, 0.22, 2)
    wob = np.stack(
        [
            rng.uniform(0.005, 0.012, 3) * [1, 1, 10],
            rng.uniform(0.3, 0.9, 3),
            rng.uniform(0, 6.3, 3),
        ]
    ).T
    t_on, t_off = float(ramp_pad[0]), float(duration - ramp_pad[1])
    tap_len = rng.uniform(0.7, 1.0) * (t_off - t_on)
    tap_start = t_on + rng.uniform(0, 1) * (t_off - t_on - tap_len)
    anchor = subj.anchor + rng.normal(0, 0.015, 2)
    if label == "circle_high":
        anchor = anchor + [0.0, 0.11]
    elif label == "circle_low":
        anchor = anchor + [0.0, -0.11]
    return _Motion(
        label=label,
        duration=duration,
        anchor=anchor,
        t_on=t_on,
        t_off=t_off,
        phase=float(rng.uniform(0, 2 * np.pi)),
        amp=float(subj.amplitude * rng.uniform(0.9, 1.1)),
        speed=float(subj.speed * rng.uniform(0.92, 1.08)),
        direction=float(rng.choice([-1.0, 1.0])),
        wobble=wob,
        twist=(
            float(rng.uniform(0.35, 0.5)),
            float(rng.uniform(2.6, 3.4)),
            float(rng.uniform(0, 6.3)),
        ),
        tap=(
            float(rng.uniform(0.003, 0.005)),
            float(rng.uniform(8.0, 10.0)),
            float(rng.uniform(0, 6.3)),
            float(tap_start),
            float(tap_start + tap_len),
        ),
        pitch_jitter=float(rng.normal(0, 0.05)),
    )


def _kinematics(m: _Motion, subj: _Subject, t: np.ndarray) -> dict[str, np.ndarray]:
    """Position (3, 3, n: x/y/z by value/first/second derivative), roll and pitch (3, n each)."""
    env = _window(t, m.t_on, m.t_off, 0.3)
    n = len(t)
    pos = np.zeros((3, 3, n))  # axis, derivative order, time
    roll = np.zeros((3, n))
    for axis in range(2):
        amp, freq, ph = m.wobble[axis]
        pos[axis] += _osc(t, amp, freq, ph, env)
    amp, freq, ph = m.wobble[2]
    roll += _osc(t, amp, freq, ph, env)
    a, f, ph, d = m.amp, m.speed, m.phase, m.direction
    name = m.label
    if name.startswith("swipe_horizontal"):
        pos[0] += _osc(t, 0.16 * a, 1.0 * f, ph, env)
    elif name.startswith("swipe_vertical"):
        pos[1] += _osc(t, 0.14 * a, 1.0 * f, ph, env)
    elif name.startswith("circle"):
        pos[0] += _osc(t, 0.085 * a, 0.9 * f, ph + np.pi / 2, env)
        pos[1] += _osc(t, 0.085 * a * d, 0.9 * f, ph, env)
    elif name == "figure_eight":
        pos[0] += _osc(t, 0.13 * a, 0.6 * f, ph, env)
        pos[1] += _osc(t, 0.06 * a * d, 1.2 * f, 2 * ph, env)
    elif name == "wave":
        pos[0] += _osc(t, 0.05 * a, 2.2 * f, ph, env)
        roll += _osc(t, 0.35, 2.2 * f, ph, env)
    if name.endswith("_twist"):
        roll += _osc(t, *m.twist, _window(t, m.t_on + 0.1, m.t_off - 0.1, 0.15))
    if name.endswith("_tap"):
        amp, freq, ph, t0, t1 = m.tap
        pos[2] += _osc(t, amp, freq, ph, _window(t, t0, t1, 0.1))
    pos[0, 0] += m.anchor[0]
    pos[1, 0] += m.anchor[1]
    roll[0] += subj.roll
    pitch = _PITCH_PER_M * pos[1].copy()
    pitch[0] += subj.pitch + m.pitch_jitter
    return {"pos": pos, "roll": roll, "pitch": pitch}


def _imu(
    kin: dict[str, np.ndarray], subj: _Subject, rng: np.random.Generator, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Accelerometer and gyroscope in the (misaligned) wrist frame; (n, 6) float32, and R."""
    roll, pitch = kin["roll"], kin["pitch"]
    rot = _rot_x(pitch[0]) @ _rot_z(roll[0])  # (n, 3, 3) world from wrist
    acc_world = kin["pos"][:, 2].T + np.array([0.0, GRAVITY, 0.0])
    acc = np.einsum("nji,nj->ni", rot, acc_world)
    rz_t = np.swapaxes(_rot_z(roll[0]), -1, -2)
    gyro = np.einsum("nij,nj->ni", rz_t, np.stack([pitch[1], 0 * pitch[1], 0 * pitch[1]], -1))
    gyro[:, 2] += roll[1]
    acc = acc @ subj.mount.T + subj.acc_bias + rng.normal(0, 0.12 * noise, acc.shape)
    gyro = gyro @ subj.mount.T + subj.gyro_bias + rng.normal(0, 0.03 * noise, gyro.shape)
    return np.concatenate([acc, gyro], axis=1).astype(np.float32), rot


def _render(
    kin: dict[str, np.ndarray],
    subj: _Subject,
    rng: np.random.Generator,
    size: int,
    noise: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames (T, size, size, 3) uint8, the per-sample background (uint8) and centres (T, 2) px."""
    ppm = size / FIELD_OF_VIEW_M
    dy, dx = rng.integers(0, 2 * _BG_MARGIN + 1, 2)  # small per-sample camera offset
    gain = rng.uniform(0.92, 1.08)
    bg = np.clip(subj.background[dy : dy + size, dx : dx + size] * gain, 0, 255)
    x, y, z = kin["pos"][:, 0]
    centres = np.stack([size / 2 + x * ppm, size / 2 - y * ppm], -1)
    hand = tuple(float(v) for v in subj.hand_rgb)
    thumb = tuple(float(v) for v in subj.thumb_rgb)
    frames = np.empty((len(x), size, size, 3), np.uint8)
    q = 16.0  # cv2 fixed-point sub-pixel precision (shift=4)
    for i, ((u, v), zi, th) in enumerate(zip(centres, z, kin["roll"][0], strict=True)):
        img = bg.copy()
        r = _HAND_RADIUS_M * subj.hand_scale * ppm * _CAMERA_DISTANCE_M / (_CAMERA_DISTANCE_M - zi)
        # fingers along the hand's local +y; positive roll turns the hand anticlockwise on screen
        cv2.ellipse(
            img,
            (round(u * q), round(v * q)),
            (round(0.78 * r * q), round(r * q)),
            -np.degrees(th),
            0,
            360,
            hand,
            -1,
            cv2.LINE_AA,
            4,
        )
        dx, dy = 0.72 * r, -0.15 * r  # thumb in the hand's local frame (y up)
        c, s = np.cos(th), np.sin(th)
        tu, tv = u + c * dx - s * dy, v - (s * dx + c * dy)
        cv2.circle(
            img, (round(tu * q), round(tv * q)), round(0.3 * r * q), thumb, -1, cv2.LINE_AA, 4
        )
        if noise:
            img = img + rng.normal(0, 3.0 * noise, img.shape)
        frames[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return frames, np.rint(bg).astype(np.uint8), centres


@dataclass(frozen=True)
class DemoSample:
    """One synthesised sample with the ground truth it was made from.

    Attributes:
        label: Class name.
        subject: Subject name (``s01`` ...).
        video: uint8 ``(num_frames, size, size, 3)``.
        sensor: float32 ``(sensor_steps, 6)``; see :data:`SENSOR_CHANNELS`.
        background: uint8 ``(size, size, 3)``: the frame without the hand and without noise.
        t_video: Frame times (s), ``(num_frames,)``.
        t_sensor: Sensor sample times (s), ``(sensor_steps,)``.
        centre_px: Hand (palm) centre in pixels ``(x, y)`` at the frame times, ``(num_frames, 2)``.
        position_m: Hand position (world x right, y up, z towards the camera; metres) at the
            sensor times, ``(sensor_steps, 3)``.
        rotation: World-from-wrist rotation matrices at the sensor times, ``(sensor_steps, 3, 3)``.
    """

    label: str
    subject: str
    video: np.ndarray
    sensor: np.ndarray
    background: np.ndarray
    t_video: np.ndarray
    t_sensor: np.ndarray
    centre_px: np.ndarray
    position_m: np.ndarray
    rotation: np.ndarray


def subject_names(n_subjects: int = NUM_SUBJECTS) -> list[str]:
    """Subject names ``s01``, ``s02``, ...

    Example:
        >>> subject_names(3)
        ['s01', 's02', 's03']
    """
    return [f"s{i + 1:02d}" for i in range(n_subjects)]


def _synth(
    label: str,
    subj_index: int,
    rep: int,
    seed: int,
    subj: _Subject,
    num_frames: int,
    size: int,
    sensor_steps: int,
    duration: float,
    noise: float,
) -> DemoSample:
    rng = np.random.default_rng([seed, 1, subj_index, CLASSES.index(label), rep])
    motion = _motion(rng, label, subj, duration)
    t_video = np.arange(num_frames) * (duration / num_frames)
    t_sensor = np.arange(sensor_steps) * (duration / sensor_steps)
    kin_s = _kinematics(motion, subj, t_sensor)
    kin_v = _kinematics(motion, subj, t_video)
    sensor_rng = np.random.default_rng([seed, 2, subj_index, CLASSES.index(label), rep])
    sensor, rot = _imu(kin_s, subj, sensor_rng, noise)
    video, background, centres = _render(
        kin_v,
        subj,
        np.random.default_rng([seed, 3, subj_index, CLASSES.index(label), rep]),
        size,
        noise,
    )
    return DemoSample(
        label=label,
        subject=subject_names(subj_index + 1)[-1],
        video=video,
        sensor=sensor,
        background=background,
        t_video=t_video,
        t_sensor=t_sensor,
        centre_px=centres,
        position_m=kin_s["pos"][:, 0].T.copy(),
        rotation=rot,
    )


def _check_params(
    n_subjects: int,
    reps: int,
    num_frames: int,
    size: int,
    sensor_steps: int,
    duration: float,
    noise: float,
) -> None:
    if n_subjects < 2:
        raise ValueError(
            f"n_subjects must be at least 2 (train and test subjects), got {n_subjects}"
        )
    for name, v, lo in (
        ("reps", reps, 1),
        ("num_frames", num_frames, 2),
        ("size", size, 16),
        ("sensor_steps", sensor_steps, 8),
    ):
        if int(v) != v or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if not duration >= 1.0:
        raise ValueError(
            f"duration must be at least 1 s (still ends plus motion), got {duration!r}"
        )
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")


def synthesize(
    label: str,
    subject: int = 0,
    rep: int = 0,
    seed: int = 0,
    *,
    num_frames: int = NUM_FRAMES,
    size: int = SIZE,
    sensor_steps: int = SENSOR_STEPS,
    duration: float = DURATION_S,
    noise: float = 1.0,
) -> DemoSample:
    """Synthesise one sample exactly as :func:`generate` writes it, with its ground truth.

    Args:
        label: One of :data:`CLASSES`.
        subject: Subject index (0 for ``s01``).
        rep: Repetition index.
        seed: Dataset seed.
        num_frames: Video frames over ``duration``.
        size: Frame height and width in pixels.
        sensor_steps: Sensor samples over ``duration``.
        duration: Clip duration in seconds.
        noise: Scale of every noise source (pixel noise, sensor noise, biases, misalignment);
            0 gives noise-free data.

    Returns:
        The :class:`DemoSample`.

    Raises:
        ValueError: Unknown label or bad parameters.

    Example:
        >>> s = synthesize("swipe_vertical_tap", subject=1, rep=2, noise=0.0)
        >>> s.video.dtype, s.sensor.dtype, s.sensor.shape
        (dtype('uint8'), dtype('float32'), (128, 6))
    """
    if label not in CLASSES:
        raise ValueError(f"unknown demo class {label!r}; classes: {', '.join(CLASSES)}")
    _check_params(max(2, subject + 1), rep + 1, num_frames, size, sensor_steps, duration, noise)
    subj = _subject(seed, subject, size, noise)
    return _synth(label, subject, rep, seed, subj, num_frames, size, sensor_steps, duration, noise)


# ---------------------------------------------------------------------------------------------
# the dataset on disk


def _params(
    seed: int,
    n_subjects: int,
    reps: int,
    num_frames: int,
    size: int,
    sensor_steps: int,
    duration: float,
    noise: float,
) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "seed": int(seed),
        "n_subjects": int(n_subjects),
        "reps": int(reps),
        "num_frames": int(num_frames),
        "size": int(size),
        "sensor_steps": int(sensor_steps),
        "duration": float(duration),
        "noise": float(noise),
    }


def _check_root(root: Path) -> None:
    """Refuse to write into a non-empty folder that does not look like a demo dataset."""
    if not root.exists():
        return
    if not root.is_dir():
        raise DataError(f"{root}: exists and is not a folder; choose another demo root")
    if (root / "demo.json").is_file():
        return
    foreign = sorted(
        p.name
        for p in root.iterdir()
        if p.name not in _LAYOUT_NAMES
        and not p.name.endswith(TMP_SUFFIX)
        and p.name != "preview.png"
    )
    if foreign:
        raise DataError(
            f"{root}: not a demo dataset folder (it holds {foreign[:3]}); pass an empty or new "
            "folder as the demo root"
        )


def generate(
    root: str | os.PathLike = DEFAULT_ROOT,
    seed: int = 0,
    *,
    n_subjects: int = NUM_SUBJECTS,
    reps: int = NUM_REPS,
    num_frames: int = NUM_FRAMES,
    size: int = SIZE,
    sensor_steps: int = SENSOR_STEPS,
    duration: float = DURATION_S,
    noise: float = 1.0,
) -> Path:
    """Write the demo dataset in the processed layout, deterministically.

    The same arguments give byte-identical files. Every file is written atomically
    (``<name>.tmp`` then rename) and ``demo.json`` is removed first and written last, so an
    interrupted generation leaves no ``demo.json`` and :func:`load` redoes it. Files of an earlier
    generation that the new one does not produce are removed.

    Args:
        root: Output folder (created; must be empty, new, or an earlier demo dataset).
        seed: Dataset seed.
        n_subjects: Number of subjects (>= 2); the last third (at least one) are test subjects.
        reps: Repetitions of every class by every subject.
        num_frames: Video frames per clip.
        size: Frame height and width in pixels.
        sensor_steps: Sensor samples per clip.
        duration: Clip duration in seconds (video and sensor cover the same interval).
        noise: Scale of every noise source; 0 gives noise-free data.

    Returns:
        The dataset root.

    Raises:
        ValueError: Bad parameters.
        DataError: ``root`` holds something other than a demo dataset.

    Example:
        >>> import tempfile
        >>> root = generate(tempfile.mkdtemp(), seed=0, n_subjects=3, reps=1)
        >>> sorted(p.name for p in root.iterdir())
        ['demo.json', 'manifest.csv', 'sensor', 'test.csv', 'train.csv', 'video']
    """
    _check_params(n_subjects, reps, num_frames, size, sensor_steps, duration, noise)
    root = Path(root)
    _check_root(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / "demo.json").unlink(missing_ok=True)
    start = time.perf_counter()
    subjects = subject_names(n_subjects)
    n_test = max(1, round(n_subjects / 3))
    test_subjects = set(subjects[n_subjects - n_test :])
    rows: list[tuple[str, str, str, str]] = []
    for si, name in enumerate(subjects):
        subj = _subject(seed, si, size, noise)
        for label in CLASSES:
            for rep in range(reps):
                s = _synth(
                    label, si, rep, seed, subj, num_frames, size, sensor_steps, duration, noise
                )
                rel = f"{name}/{label}_{rep}.npy"
                atomic_save_npy(root / "video" / rel, s.video)
                atomic_save_npy(root / "sensor" / rel, s.sensor)
                rows.append((rel, label, name, "test" if name in test_subjects else "train"))
    keep = {r[0] for r in rows}
    for modality in MODALITIES:
        for p in sorted((root / modality).rglob("*.npy")):
            if p.relative_to(root / modality).as_posix() not in keep:
                p.unlink()
    write_split_csvs(root, pd.DataFrame(rows, columns=["file", "label", "subject", "split"]))
    lines = ["file,label,subject,split"] + [",".join(r) for r in rows]
    atomic_write_text(root / "manifest.csv", "\n".join(lines) + "\n")
    info = {
        "name": NAME,
        "params": _params(seed, n_subjects, reps, num_frames, size, sensor_steps, duration, noise),
        "classes": list(CLASSES),
        "subjects": subjects,
        "test_subjects": sorted(test_subjects),
        "sensor_channels": list(SENSOR_CHANNELS),
        "samples": len(rows),
        "protocol": PROTOCOL,
    }
    atomic_write_text(root / "demo.json", json.dumps(info, indent=2) + "\n")
    log.info(
        "demo: wrote %d samples (%d subjects, %d test) to %s in %.1f s",
        len(rows),
        n_subjects,
        n_test,
        root,
        time.perf_counter() - start,
    )
    return root


def is_current(root: str | os.PathLike, seed: int = 0, **gen_kwargs: Any) -> bool:
    """Whether ``root`` holds a complete demo dataset generated with these parameters.

    Args:
        root: Dataset folder.
        seed: Dataset seed.
        **gen_kwargs: The keyword arguments of :func:`generate` (defaults filled in).

    Returns:
        True when ``demo.json`` exists, matches the parameters and format version, and every file
        listed in ``manifest.csv`` is present.

    Example:
        >>> is_current("/nonexistent")
        False
    """
    want = dict(
        n_subjects=NUM_SUBJECTS,
        reps=NUM_REPS,
        num_frames=NUM_FRAMES,
        size=SIZE,
        sensor_steps=SENSOR_STEPS,
        duration=DURATION_S,
        noise=1.0,
    )
    unknown = set(gen_kwargs) - set(want)
    if unknown:
        raise TypeError(f"unknown demo generation argument(s): {sorted(unknown)}")
    root = Path(root)
    try:
        info = json.loads((root / "demo.json").read_text())
        lines = (root / "manifest.csv").read_text().splitlines()[1:]
    except (OSError, ValueError):
        return False
    want.update(gen_kwargs)
    if not isinstance(info, dict) or info.get("params") != _params(seed, **want):
        return False
    for line in lines:
        rel = line.split(",", 1)[0]
        if not all((root / m / rel).is_file() for m in MODALITIES):
            return False
    return (root / "train.csv").is_file() and (root / "test.csv").is_file()


class Demo(ProcessedLayout):
    """The demo dataset's adapter: generate when absent, incomplete or stale, then read it.

    Options: ``data_seed`` (generation seed; default 0, so runs with different seeds share one
    dataset and their spread measures training variation; ``None`` ties the data to ``seed``) and
    the keyword arguments of :func:`generate`.

    Example:
        >>> Demo.modalities["sensor"]
        {'kind': 'inertial', 'unit_channels': 6}
    """

    name = NAME
    modalities = {"video": {"kind": "rgb"}, "sensor": {"kind": "inertial", "unit_channels": 6}}
    protocols = {"cross-subject": PROTOCOL}
    default_protocol = "cross-subject"
    options: dict[str, Any] = {
        "data_seed": 0,
        "n_subjects": NUM_SUBJECTS,
        "reps": NUM_REPS,
        "num_frames": NUM_FRAMES,
        "size": SIZE,
        "sensor_steps": SENSOR_STEPS,
        "duration": DURATION_S,
        "noise": 1.0,
    }
    default_root = None
    root_hint = "pass an empty or new folder as the demo root"

    def __init__(self, root: str | os.PathLike | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(DEFAULT_ROOT if root is None else root, *args, **kwargs)

    def check(self) -> None:
        gen = {k: v for k, v in self.opts.items() if k != "data_seed"}
        data_seed = self.opts["data_seed"]
        gseed = self.seed if data_seed is None else data_seed
        if not is_current(self.root, gseed, **gen):
            log.info("demo: generating %s (seed %d)", self.root, gseed)
            generate(self.root, gseed, **gen)
        super().check()


load = Demo.load
"""``load(root=None, seed=0, val_fraction=0.25, *, data_seed=0, **generate_kwargs) -> Manifest``:
the demo dataset (default root ``data/demo``), generated first when absent, incomplete or stale
(see :class:`Demo`); ``seed`` seeds the validation carve.

Example:
    >>> m = load("data/demo", seed=0)  # doctest: +SKIP
    >>> sorted(set(m.samples["split"]))  # doctest: +SKIP
    ['test', 'train', 'val']
"""


def render_preview(
    root: str | os.PathLike,
    path: str | os.PathLike,
    *,
    subject: str | None = None,
    frames: int = 6,
    scale: int = 2,
) -> Path:
    """Write a PNG montage: one row per class (one clip of one subject), ``frames`` frames each.

    Args:
        root: A generated demo dataset.
        path: Output PNG.
        subject: Subject to show; default the first one in ``manifest.csv``.
        frames: Frames per row, evenly spaced over the clip.
        scale: Nearest-neighbour upscaling factor.

    Returns:
        The PNG path.

    Raises:
        DataError: ``root`` is not a generated demo dataset.

    Example:
        >>> render_preview("data/demo", "docs/demo_preview.png")  # doctest: +SKIP
    """
    root, path = Path(root), Path(path)
    try:
        rows = [ln.split(",") for ln in (root / "manifest.csv").read_text().splitlines()[1:]]
    except OSError:
        raise DataError(f"{root}: no manifest.csv; generate the demo dataset first") from None
    subject = subject or rows[0][2]
    tiles = []
    for label in CLASSES:
        rel = next((r[0] for r in rows if r[1] == label and r[2] == subject), None)
        if rel is None:
            raise DataError(f"{root}: no {label} sample of subject {subject!r} in manifest.csv")
        clip = np.load(root / "video" / rel)
        idx = np.linspace(0, len(clip) - 1, frames).round().astype(int)
        row = np.concatenate([np.pad(clip[i], ((1, 1), (1, 1), (0, 0))) for i in idx], axis=1)
        row = np.repeat(np.repeat(row, scale, 0), scale, 1)
        label_w = 11 * max(len(c) for c in CLASSES) * scale // 2 + 8
        text = np.zeros((row.shape[0], label_w, 3), np.uint8)
        cv2.putText(
            text,
            label,
            (4, row.shape[0] // 2 + 4),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.35 * scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        tiles.append(np.concatenate([text, row], axis=1))
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.concatenate(tiles, axis=0), cv2.COLOR_RGB2BGR))
    if not ok:
        raise DataError(f"{path}: PNG encoding failed")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)
    return path
