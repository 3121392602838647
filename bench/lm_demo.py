"""Moved to `python -m bench.lm.demo`: an alias of the old command, for one release."""

from bench.lm.demo import main

if __name__ == "__main__":
    main()
