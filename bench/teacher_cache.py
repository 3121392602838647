"""Moved to `python -m bench.speed.teacher_cache`: an alias of the old command, for one release."""

from bench.speed.teacher_cache import main

if __name__ == "__main__":
    main()
