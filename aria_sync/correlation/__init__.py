"""Cross-source asset correlation: every vendor asset record becomes, or joins, exactly one ARIA asset."""

from aria_sync.correlation.engine import correlate

__all__ = ["correlate"]
