"""`python -m w2vu` runs the command line."""

import sys

from w2vu.cli import main

sys.exit(main())
