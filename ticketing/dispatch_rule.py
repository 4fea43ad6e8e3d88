"""The auto-dispatch decision (§10): a routing rule, else a confident classifier, else manual.

One pure function, `decide`, used by both writers of an auto-dispatch: the ORM path
(ticketing.dispatch.auto_dispatch, for a ticket already in the database) and intake's batch writer
(ticketing.intake_write). It reads configuration and the departments it is given a way to look up,
and writes nothing: the caller applies the decision (sub-orders and a "dispatched" event, or
dispatch_mode "manual" and a "manual_dispatch_required" event with the reason below).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from config.loader import load_yaml
from config.settings import Settings
from ticketing.models import Department
from ticketing.routing import RoutingRule, match_rule


class PredictionLike(Protocol):
    """What the decision reads from ticketing.classifier.Prediction (and nothing more)."""

    category: str
    urgency: str
    department: str | None
    confidence: float
    details: dict[str, Any]


DepartmentLookup = Callable[[Sequence[str]], Mapping[str, Department]]


@dataclass(frozen=True)
class Decision:
    """Where a ticket goes: `codes` (empty: manual dispatch, for `reason`) and on what basis."""

    codes: list[str]
    basis: dict[str, Any]
    reason: str | None
    rule: RoutingRule | None
    confidence: float
    suggested: str | None
    threshold: float
    found: Mapping[str, Department] = field(default_factory=dict)  # the departments looked up

    def manual_event(self) -> dict[str, Any]:
        """The detail of the "manual_dispatch_required" event (when `codes` is empty)."""
        return {
            "reason": self.reason,
            "confidence": self.confidence,
            "threshold": self.threshold,
            "suggested_department": self.suggested,
            "rule": self.rule.name if self.rule else None,
        }


def classifier_threshold(settings: Settings) -> float:
    """CALLCENTER_CLASSIFIER_THRESHOLD when set explicitly, else categories.yaml, else the default."""
    if "classifier_threshold" in settings.model_fields_set:
        return float(settings.classifier_threshold)
    value = load_yaml(settings, "categories.yaml").get("classifier_threshold")
    return float(value) if value is not None else float(settings.classifier_threshold)


def confidence_of(value: Any) -> float:
    """A prediction's confidence as a finite float (0.0 for anything else)."""
    try:
        c = float(value)
    except (TypeError, ValueError):
        return 0.0
    return c if math.isfinite(c) else 0.0


def unusable_in(found: Mapping[str, Department], codes: Sequence[str]) -> list[str]:
    """The codes that name no department, or an inactive one."""
    return [c for c in codes if c not in found or not found[c].active]


def decide(
    settings: Settings,
    title: str | None,
    content: str | None,
    prediction: PredictionLike | None,
    lookup: DepartmentLookup,
) -> Decision:
    """The decision for a ticket of this text and prediction (None: the classifier was not asked)."""
    confidence = confidence_of(getattr(prediction, "confidence", None))
    suggested = getattr(prediction, "department", None) or None
    threshold = classifier_threshold(settings)
    rule = match_rule(settings, f"{title or ''}\n{content or ''}")
    codes: list[str] = []
    basis: dict[str, Any] = {}
    reason: str | None = None
    found: Mapping[str, Department] = {}
    if rule is not None:
        found = lookup(rule.departments)
        bad = unusable_in(found, rule.departments)
        if not bad:
            codes = list(rule.departments)
            basis = {"basis": "rule", "rule": rule.name, "keywords": list(rule.hits)}
        else:
            reason = f"路由规则 {rule.name} 指向的部门不存在或已停用：{'、'.join(bad)}"
    elif confidence >= threshold and suggested:
        found = lookup([suggested])
        if not unusable_in(found, [suggested]):
            codes = [suggested]
            basis = {"basis": "classifier", "confidence": confidence, "threshold": threshold}
        else:
            reason = f"分类建议的部门 {suggested} 不存在或已停用"
    elif not suggested:
        reason = "分类器未给出建议部门"
    else:
        reason = f"分类置信度 {confidence:.2f} 低于阈值 {threshold:.2f}"
    return Decision(codes, basis, reason, rule, confidence, suggested, threshold, found)
