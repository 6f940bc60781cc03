"""The risk register: risks from detections and vulnerability definitions, with a transparent score."""

from aria_sync.risk.register import refresh_risks

__all__ = ["refresh_risks"]
