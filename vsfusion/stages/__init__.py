import vsfusion._quiet_backend  # noqa: F401  (before Keras loads TensorFlow)
