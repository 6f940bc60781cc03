"""Cross-source asset correlation: every vendor asset record becomes, or joins, exactly one ARIA asset."""

from aria_sync.correlation.engine import asset_id_for, correlate
from aria_sync.correlation.links import link_record, revoke_override, unlink_record
from aria_sync.correlation.policy import DEFAULT_POLICY, CorrelationPolicy
from aria_sync.correlation.quality import pairwise_scores

__all__ = [
    "DEFAULT_POLICY",
    "CorrelationPolicy",
    "asset_id_for",
    "correlate",
    "link_record",
    "pairwise_scores",
    "revoke_override",
    "unlink_record",
]
