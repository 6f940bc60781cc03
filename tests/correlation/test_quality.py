"""Pairwise precision and recall."""

from __future__ import annotations

from aria_sync.correlation import pairwise_scores


def test_pairwise_scores_count_pairs() -> None:
    truth = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 3}
    predicted = {"a": "x", "b": "x", "c": "y", "d": "y", "e": "z"}
    scores = pairwise_scores(predicted, truth)
    # true pairs: ab ac bc (3); predicted: ab, cd (2); correct: ab (1)
    assert (scores.true_pairs, scores.predicted_pairs, scores.correct_pairs) == (3, 2, 1)
    assert scores.precision == 0.5
    assert abs(scores.recall - 1 / 3) < 1e-9


def test_perfect_and_empty() -> None:
    assert pairwise_scores({"a": 1, "b": 1}, {"a": "m", "b": "m"}).precision == 1.0
    assert pairwise_scores({}, {}).recall == 1.0
