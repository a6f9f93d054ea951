"""``python -m cxr_explorer`` runs the CLI."""

import sys

from cxr_explorer.cli import main

sys.exit(main())
