"""`python -m regnety_kit ...`: the same as the installed `regnety-kit` command."""

import sys

from regnety_kit.cli import main

sys.exit(main())
