"""`python -m distillery.cli`: the same as the `distillery` command."""

from distillery.cli.main import main

main()
