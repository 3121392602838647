"""Moved to `python -m bench.service.api_load`: an alias of the old command, for one release."""

from bench.service.api_load import main

if __name__ == "__main__":
    main()
