"""Training one job over several processes: the process group, each rank's data, reductions, wrapping."""
