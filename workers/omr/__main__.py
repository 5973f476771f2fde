import sys

from workers.omr.cli import main

# A process of its own: a folder is read on every core (cli.main's default_jobs).
sys.exit(main(default_jobs=0))
