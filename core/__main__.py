"""`python -m llmtop` is the `llmtop` command."""

import sys

from llmtop.commands.cli import main

sys.exit(main())
