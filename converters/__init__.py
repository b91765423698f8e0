"""Keras or SavedModel in, artifacts out: grouped-conv lowering, TFLite, ONNX, metadata, validation.

Not built yet (issue: converters); the layout is reserved so imports follow DESIGN.md.
"""
