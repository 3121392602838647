"""Moved to `app.cli.quickstart.tweets`, which the quickstart shares with the benchmarks."""

from app.cli.quickstart.tweets import CORPUS, Split, Splits, corpus_path, load_tweets, write_splits

__all__ = ["CORPUS", "Split", "Splits", "corpus_path", "load_tweets", "write_splits"]
