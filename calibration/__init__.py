"""Images in: folder datasets, bundled samples, representative datasets, drift metrics.

Not built yet (issue: calibration and drift); the layout is reserved so imports follow DESIGN.md.
"""
