"""The subcommands of ``graphmeta``, one module each; see :mod:`graphmeta.cli` for the contract."""
