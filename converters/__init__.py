"""Keras in, artifacts out: grouped-conv lowering, TFLite, ONNX, metadata, validation.

CLIs: `python -m converters.tflite`, `converters.onnx`, `converters.validate`, `converters.inspect`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any TensorFlow import: its C++ INFO/WARNING chatter
