"""`python -m bench.sweep_demo`: the tweets demo as a recipe sweep (see `bench.sweep.classifier`)."""

from bench.sweep.classifier import main

if __name__ == "__main__":
    main()
