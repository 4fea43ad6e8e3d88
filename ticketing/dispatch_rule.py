"""The auto-dispatch decision (§10): a conduct complaint to the business-environment office, else a
routing rule (when a confident classifier agrees with it, or is not confident), else a confident
classifier, else manual.

A conduct complaint (作风投诉: 刁难, 吃拿卡要 … routing.yaml `conduct`) never goes to the department
it is about: it goes to the office the config names, flagged, with the accused recorded
(ticketing.dispatch refuses to send it to them): the departments its text names as the subject of
the conduct words (ticketing.conduct.accused_in_text, by name or alias), then those a rule or the
classifier pointed at.
A routing rule and a confident classifier that name different departments disagree: the ticket
waits for a dispatcher rather than trusting either.

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
from ticketing.conduct import accused_in_text
from ticketing.models import Department
from ticketing.routing import RoutingRule, match_conduct, match_rule


class PredictionLike(Protocol):
    """What the decision reads from ticketing.classifier.Prediction (and nothing more)."""

    category: str
    urgency: str
    department: str | None
    confidence: float
    details: dict[str, Any]


DepartmentLookup = Callable[[Sequence[str]], Mapping[str, Department]]
DepartmentRegistry = Callable[[], Mapping[str, Department]]  # every department, by code


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
    conduct: bool = False  # a conduct complaint (作风投诉)
    accused: tuple[str, ...] = ()  # the departments it is about (never sent it)

    def manual_event(self) -> dict[str, Any]:
        """The detail of the "manual_dispatch_required" event (when `codes` is empty)."""
        return {
            "reason": self.reason,
            "confidence": self.confidence,
            "threshold": self.threshold,
            "suggested_department": self.suggested,
            "rule": self.rule.name if self.rule else None,
            **({"conduct": True, "accused": list(self.accused)} if self.conduct else {}),
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
    registry: DepartmentRegistry | None = None,
) -> Decision:
    """The decision for a ticket of this text and prediction (None: the classifier was not asked).
    `registry`: every department, whose names a conduct complaint's text is read for (None:
    departments.yaml's names only); asked only for a conduct complaint."""
    confidence = confidence_of(getattr(prediction, "confidence", None))
    suggested = getattr(prediction, "department", None) or None
    threshold = classifier_threshold(settings)
    text = f"{title or ''}\n{content or ''}"
    rule = match_rule(settings, text)
    conduct = match_conduct(settings, text)
    codes: list[str] = []
    basis: dict[str, Any] = {}
    reason: str | None = None
    found: Mapping[str, Department] = {}
    confident = confidence >= threshold and bool(suggested)
    accused: tuple[str, ...] = ()
    if conduct is not None:
        in_text = accused_in_text(
            settings,
            text,
            conduct.hits,
            registry() if registry is not None else None,
            office=conduct.office,
        )
        named = [
            *in_text,
            *(rule.departments if rule else ()),
            *([suggested] if suggested else []),
        ]
        accused = tuple(dict.fromkeys(c for c in named if c and c != conduct.office))
        found = lookup([conduct.office])
        if not unusable_in(found, [conduct.office]):
            codes = [conduct.office]
            basis = {"basis": "conduct", "keywords": list(conduct.hits), "accused": list(accused)}
        else:
            reason = f"作风投诉的受理部门 {conduct.office} 不存在或已停用"
    elif rule is not None and confident and suggested not in rule.departments:
        reason = (
            f"路由规则 {rule.name} 指向 {'、'.join(rule.departments)}，"
            f"分类建议 {suggested}（置信度 {confidence:.2f}），两者不一致"
        )
    elif rule is not None:
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
    return Decision(
        codes,
        basis,
        reason,
        rule,
        confidence,
        suggested,
        threshold,
        found,
        conduct=conduct is not None,
        accused=accused,
    )
