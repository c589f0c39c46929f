"""Run a stage script on two logical CPU devices, in a fresh interpreter.

``python tests/stages/two_devices.py train_sensor.py ARGS...`` splits the CPU into two logical
devices before the backend initialises (TensorFlow: ``tf.config.set_logical_device_configuration``;
JAX: ``XLA_FLAGS=--xla_force_host_platform_device_count=2``, read once when JAX loads) and then runs
the script as ``__main__``. With ``--distribute none`` the same script trains on one device of the
same setup, the single-device reference of the tests.
"""

import os
import runpy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEVICES = 2

if __name__ == "__main__":
    flag = f"--xla_force_host_platform_device_count={DEVICES}"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    sys.path.insert(0, str(REPO))
    import vsfusion  # noqa: F401  (TensorFlow's oneDNN setting before TensorFlow loads)

    if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        logical = [tf.config.LogicalDeviceConfiguration()] * DEVICES
        tf.config.set_logical_device_configuration(cpu, logical)
    script, *args = sys.argv[1:]
    sys.argv = [script, *args]
    runpy.run_path(str(REPO / script), run_name="__main__")
