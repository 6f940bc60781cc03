"""aria_sync."""
