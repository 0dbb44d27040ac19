"""Reliance probes (`spurspec probe`): measure a trained model's reliance on a spurious feature
directly, without needing the feature labelled on many test images. Insertion paints the feature
into test images that lack it (features.py) and removal fills it from the background where its
region is known (inpaint.py); both score the same images again and compare (stats.py).
Attribution measures where each model's evidence lies (attribution.py, maps from scoring.py).
The stage itself, its settings and its outputs (RUN/probes/<probe>.parquet) are in stage.py.
Torch is imported only by scoring.py, so the CLI can list features and check settings without it."""
