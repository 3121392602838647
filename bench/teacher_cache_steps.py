"""Moved to `python -m bench.speed.teacher_cache_steps`: an alias of the old command, for one release."""

from bench.speed.teacher_cache_steps import main

if __name__ == "__main__":
    main()
