"""Moved to `python -m bench.lm.loss_memory`: an alias of the old command, for one release."""

from bench.lm.loss_memory import main

if __name__ == "__main__":
    main()
