"""Kubernetes label selectors (metav1.LabelSelector), as the apiserver evaluates them."""

from __future__ import annotations

from typing import Any, Mapping


def matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """Whether `labels` match a LabelSelector. An empty selector matches everything;
    a missing (None) selector matches nothing, as in NetworkPolicy peers and RBAC
    aggregation."""
    if selector is None:
        return False
    if not isinstance(selector, dict):
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != str(value):
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key"), expr.get("operator")
        values = [str(v) for v in expr.get("values") or []]
        if op == "In":
            if key not in labels or labels[key] not in values:
                return False
        elif op == "NotIn":
            if key in labels and labels[key] in values:
                return False
        elif op == "Exists":
            if key not in labels:
                return False
        elif op == "DoesNotExist":
            if key in labels:
                return False
        else:
            return False  # an unknown operator is invalid: it selects nothing
    return True
