"""`python -m labplan`: the labplan command line (see labplan.cli)."""

import sys

from labplan.cli import main

sys.exit(main())
