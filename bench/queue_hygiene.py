"""Moved to `python -m bench.service.queue_hygiene`: an alias of the old command, for one release."""

from bench.service.queue_hygiene import main

if __name__ == "__main__":
    main()
