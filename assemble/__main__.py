"""``python -m stackform.assemble`` runs the command line."""

from .cli import main

raise SystemExit(main())
