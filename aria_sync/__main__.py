"""`python -m aria_sync` runs the CLI."""

import sys

from aria_sync.cli import main

sys.exit(main())
