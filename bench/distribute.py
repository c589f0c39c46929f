"""Training step time on one and on two logical CPU devices (``--distribute``), per backend.

A sanity figure, not a speed claim: two logical devices split the same CPU cores, so the step
cannot get faster; what the figure shows is the overhead of splitting the global batch and
all-reducing the gradients. Each measurement runs in a fresh interpreter that splits the CPU into
two logical devices before the backend starts (TensorFlow: ``set_logical_device_configuration``;
JAX: ``--xla_force_host_platform_device_count``) and trains with ``distribution("none")`` (one
device) or ``distribution("auto")`` (both), through the helpers the stages use.

Example:
    >>> from distribute import bench_distribute  # from bench/  # doctest: +SKIP
    >>> bench_distribute(backends=("jax",), steps=4)["runs"][0]["step_s"]  # doctest: +SKIP
    0.41
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: The models timed: the sensor stage's InceptionTime (its defaults) and a light video trunk.
MODELS: dict[str, dict[str, Any]] = {
    "inception_time": {"input": (128, 6), "batch": 16},
    "x3d_xs": {"input": (8, 64, 64, 3), "batch": 8},
}


def _child(job: dict[str, Any]) -> dict[str, Any]:
    """Time ``job["steps"]`` training steps of ``job["model"]`` under ``job["option"]``."""
    sys.path.insert(0, str(REPO))
    import vsfusion  # noqa: F401  (oneDNN setting before TensorFlow loads)

    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
    import keras
    import numpy as np

    from vsfusion.models import build_backbone, build_inception_time, classification_loss
    from vsfusion.stages import distribute

    spec = MODELS[job["model"]]
    batch, steps = spec["batch"], int(job["steps"])
    rng = np.random.default_rng(0)
    n = batch * (steps + 2)  # two warm-up steps (tracing) are not timed
    key = "sensor" if job["model"] == "inception_time" else "video"
    x = {key: rng.normal(size=(n, *spec["input"])).astype("float32")}
    y = rng.integers(0, 8, n)

    class Timer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            self._t = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.times.append(time.perf_counter() - self._t)

    with distribute.distribution(job["option"]) as replicas:
        keras.utils.set_random_seed(0)
        if key == "sensor":
            model = build_inception_time(spec["input"], num_classes=8)
        else:
            model = build_backbone(job["model"], spec["input"], num_classes=8)
        loss, metrics = classification_loss(0.0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=metrics)
        kw = {"y": y, "batch_size": batch, "shuffle": False}
        train, _, kw = distribute.fit_data(x, None, kw)
        timer = Timer()
        with distribute.fitting(model, train):
            model.fit(train, epochs=1, verbose=0, callbacks=[timer], **kw)
        devices = replicas.num_replicas if replicas else 1
    timed = timer.times[2:]
    return {
        "model": job["model"],
        "backend": keras.backend.backend(),
        "devices": devices,
        "batch": batch,
        "input": list(spec["input"]),
        "steps_timed": len(timed),
        "step_s": round(statistics.median(timed), 4),
    }


def bench_distribute(
    backends: tuple[str, ...] = ("tensorflow", "jax"),
    models: tuple[str, ...] = tuple(MODELS),
    steps: int = 8,
) -> dict[str, Any]:
    """Median training step time on one and on two logical CPU devices.

    Args:
        backends: Keras backends to measure, each in its own interpreters.
        models: Keys of :data:`MODELS`.
        steps: Timed steps per measurement (after two untimed ones).

    Returns:
        ``{"runs": [{model, backend, devices, batch, input, steps_timed, step_s}, ...],
        "ratio_two_to_one": {"<model> <backend>": step_s(2) / step_s(1)}, "timing": ...}``.
    """
    runs = []
    for backend in backends:
        env = {
            **os.environ,
            "KERAS_BACKEND": backend,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        }
        for model in models:
            for option in ("none", "auto"):
                job = {"model": model, "option": option, "steps": steps}
                cmd = [sys.executable, __file__, json.dumps(job)]
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
                if done.returncode:
                    raise RuntimeError(f"{job} failed: {done.stderr[-2000:]}")
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    by = {(r["model"], r["backend"], r["devices"]): r["step_s"] for r in runs}
    ratios = {
        f"{m} {b}": round(by[(m, b, 2)] / by[(m, b, 1)], 2)
        for (m, b, d) in by
        if d == 1 and (m, b, 2) in by
    }
    return {
        "runs": runs,
        "ratio_two_to_one": ratios,
        "timing": f"median of {steps} training steps after 2 untimed ones, global batch as listed",
    }


def markdown(results: dict[str, Any]) -> list[str]:
    """The measurement as Markdown lines (what the README quotes)."""
    lines = [
        "",
        "Training step on one and on two logical CPU devices (the same cores split in two; "
        f"{results['timing']}):",
        "",
        "| model | backend | global batch | 1 device s/step | 2 devices s/step | ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    by = {(r["model"], r["backend"], r["devices"]): r for r in results["runs"]}
    for (model, backend, devices), r in by.items():
        if devices != 1 or (model, backend, 2) not in by:
            continue
        two = by[(model, backend, 2)]["step_s"]
        lines.append(
            f"| {model} | {backend} | {r['batch']} | {r['step_s']} | {two} | "
            f"{results['ratio_two_to_one'][f'{model} {backend}']}x |"
        )
    return lines


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]))))
