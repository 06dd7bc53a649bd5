"""What was tried and did not ship, each still runnable (``python -m train <name>`` or
``python -m train.experiments.<name>``); the findings are in ``train/EXPERIMENTS.md``."""
