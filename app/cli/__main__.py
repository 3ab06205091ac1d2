"""``python -m app.cli``: the same as the installed ``rnnvis`` command."""
import sys

from app.cli import main

sys.exit(main())
