"""`python -m metabot` is the `metabot` command."""

import sys

from metabot.cli import main

sys.exit(main())
