"""The `aria-sync` command line."""

from aria_sync.cli.main import main

__all__ = ["main"]
