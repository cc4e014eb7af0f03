"""``python -m graphmeta``: the same as the ``graphmeta`` command."""

from .cli import main

raise SystemExit(main())
