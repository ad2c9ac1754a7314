"""`python -m graphyard` runs the CLI."""

from graphyard.cli import main

main()
