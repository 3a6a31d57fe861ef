"""`python -m smoea` (and `torchrun -m smoea`) runs the command line."""

import sys

from smoea.cli import main

sys.exit(main())
