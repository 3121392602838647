"""Moved to `python -m bench.lm.cross_tokenizer`: an alias of the old command, for one release."""

from bench.lm.cross_tokenizer import main

if __name__ == "__main__":
    main()
