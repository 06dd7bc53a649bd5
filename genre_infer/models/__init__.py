"""Models shipped with genre-infer (copied from exported/ when the wheel is built)."""
