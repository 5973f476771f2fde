import sys

from workers.omr.cli import main

sys.exit(main())
