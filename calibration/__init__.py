"""Images in: folder datasets, the bundled photographs, representative and validation sets, drift metrics."""
