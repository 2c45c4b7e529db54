"""The `ganforge` command (main.py) and its command groups, one module each; options made from the settings
dataclasses (options.py); the README tables made from the settings and the model families (settings_docs.py)."""

from ganforge.cli.main import main

__all__ = ["main"]
