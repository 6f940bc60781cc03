"""Pairwise precision and recall of a correlation against a ground truth."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

RecordKey = TypeVar("RecordKey", bound=Hashable)
AssetId = TypeVar("AssetId", bound=Hashable)
MachineId = TypeVar("MachineId", bound=Hashable)
Group = TypeVar("Group", bound=Hashable)


@dataclass(frozen=True)
class PairwiseScores:
    """Pairs of records put in one asset (predicted) versus pairs that are one machine (truth)."""

    precision: float
    recall: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    records: int


def _pairs(counts: Counter[Group]) -> int:
    return sum(n * (n - 1) // 2 for n in counts.values())


def pairwise_scores(
    predicted: Mapping[RecordKey, AssetId], truth: Mapping[RecordKey, MachineId]
) -> PairwiseScores:
    """Score the records present in both maps; 1.0 when there is no pair to get right (or wrong).

    Counting works on group sizes, never on explicit pairs, so large estates score in linear time.
    """
    keys = [key for key in predicted if key in truth]
    predicted_counts = Counter(predicted[key] for key in keys)
    truth_counts = Counter(truth[key] for key in keys)
    joint_counts = Counter((predicted[key], truth[key]) for key in keys)
    predicted_pairs, true_pairs, correct = (
        _pairs(predicted_counts),
        _pairs(truth_counts),
        _pairs(joint_counts),
    )
    return PairwiseScores(
        precision=correct / predicted_pairs if predicted_pairs else 1.0,
        recall=correct / true_pairs if true_pairs else 1.0,
        true_pairs=true_pairs,
        predicted_pairs=predicted_pairs,
        correct_pairs=correct,
        records=len(keys),
    )
