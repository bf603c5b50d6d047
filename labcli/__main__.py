"""`python -m labcli`."""

import sys

from labcli.main import main

sys.exit(main())
