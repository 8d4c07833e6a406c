"""Whether a new model version replaces the champion: the promotion rule applied to metrics."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from profilehouse.models.registry.settings import PromotionRule


@dataclass(frozen=True)
class Champion:
    """The current champion as the decision sees it: its version and validation metrics."""

    version: int
    metrics: Mapping[str, float]


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the candidate is promoted, the champion it was compared with, and why."""

    promoted: bool
    champion_before: int | None
    reason: str


def promotion_decision(
    rule: PromotionRule, candidate: Mapping[str, float], champion: Champion | None
) -> PromotionDecision:
    """Promote ``candidate`` when there is no champion, when the champion lacks the rule's
    metric (it was registered under another rule), or when the candidate's metric beats the
    champion's by more than ``rule.min_improvement`` in the rule's direction.

    The candidate must have the metric (the registry checks it before deciding).
    """
    if champion is None:
        return PromotionDecision(True, None, "first version: promoted")
    metric, new = rule.metric, candidate[rule.metric]
    if metric not in champion.metrics:
        return PromotionDecision(
            True,
            champion.version,
            f"champion v{champion.version} has no {metric} (registered under another rule): "
            f"promoted with {metric} {new:.6g}",
        )
    old = champion.metrics[metric]
    improvement = new - old if rule.direction == "higher" else old - new
    promoted = improvement > rule.min_improvement
    verdict = "promoted" if promoted else "not promoted"
    comparison = ">" if promoted else "<="
    return PromotionDecision(
        promoted,
        champion.version,
        f"{metric} {new:.6g} vs champion v{champion.version} {old:.6g} ({rule.direction} is "
        f"better): improvement {improvement:.6g} {comparison} min_improvement "
        f"{rule.min_improvement:.6g}: {verdict}",
    )
