"""``python -m salience`` runs the command line."""

from salience.cli import main

main()
