"""Training: the trainer (objective, optimiser, windows, checkpoints) and the `jepa-ros train` command."""
