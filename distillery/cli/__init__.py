"""The `distillery` command line: submit and watch jobs, manage files, run the service."""
