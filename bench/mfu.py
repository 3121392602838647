"""Moved to `python -m bench.speed.mfu`: an alias of the old command, for one release."""

from bench.speed.mfu import main

if __name__ == "__main__":
    main()
