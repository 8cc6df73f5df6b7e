"""`python -m edgefptt` runs the command line."""

from edgefptt.cli import main

main()
