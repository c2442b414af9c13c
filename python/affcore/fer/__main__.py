"""``python -m affcore.fer ...``: the expression-recogniser commands (see :mod:`affcore.fer.cli`)."""
from .cli import main

raise SystemExit(main())
