"""Observers the loop notifies at start / step / epoch / end: TensorBoard, progress, CSV, guards, checkpoints."""
