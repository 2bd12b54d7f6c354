"""`python -m llmtop` is the `llmtop` command."""

import sys

from llmtop.cli import main

sys.exit(main())
