"""Training speed on this machine: FLOPs utilisation, speed levers, the teacher cache, one GPU."""
