"""Training wing of genre-infer: folder-per-genre audio -> fitted CNN -> evaluated ONNX model.

Run ``python -m train --help``. This package imports :mod:`genre_infer` for
audio decoding, features and track-level aggregation (one definition of
each); :mod:`genre_infer` never imports it.
"""
