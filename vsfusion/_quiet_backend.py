"""Importing this module loads the Keras backend without TensorFlow's start-up notices on stderr
(:func:`vsfusion.runtime.import_backend_quietly`). The packages that use Keras import it first."""

from vsfusion.runtime import import_backend_quietly

import_backend_quietly()
