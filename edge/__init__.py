"""The device side of the kit: numpy, Pillow and a runtime only, never TensorFlow or Keras.

This package is the ground floor: preprocessing specs and the kit's error family live here once,
and every other package (models, converters, calibration) imports them from here.
"""
