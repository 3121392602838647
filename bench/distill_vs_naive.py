"""Moved to `python -m bench.naive.distill_vs_naive`: an alias of the old command, for one release."""

from bench.naive.distill_vs_naive import main

if __name__ == "__main__":
    main()
