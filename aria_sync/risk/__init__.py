"""The risk register: risks from detections and vulnerability definitions, with a transparent score."""

from aria_sync.risk.register import refresh_risks
from aria_sync.risk.weights import DEFAULT_WEIGHTS, load_weights, set_weights, validate_weights

__all__ = ["DEFAULT_WEIGHTS", "load_weights", "refresh_risks", "set_weights", "validate_weights"]
