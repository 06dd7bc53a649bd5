"""Pretrained networks, one module each: the PyTorch port, its checkpoint loader and what a recipe
needs of it (features, pooled embeddings). :mod:`train.backbones.musicnn` is the shipped model's."""
