"""`python -m smoea.cli`: the same as the `smoea` command."""

import sys

from smoea.cli.main import main

sys.exit(main())
