"""The training loop every method shares, with its checkpoints, optimiser and precision."""
