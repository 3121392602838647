"""Moved to `python -m bench.demo.classifier`: an alias of the old command, for one release."""

from bench.demo.classifier import main

main()
