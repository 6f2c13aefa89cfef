"""Kyverno ValidatingPolicy (policies.kyverno.io/v1) admission, evaluated with celpy.

Match semantics are those of Kubernetes' ValidatingAdmissionPolicy, which Kyverno's
ValidatingPolicy reuses: spec.matchConstraints.resourceRules (apiGroups, apiVersions,
operations, resources with `*` and `resource/subresource`), excludeResourceRules,
namespaceSelector (against the namespace's labels; a cluster-scoped object never matches a
non-empty namespaceSelector... except Namespaces, which match on their own labels),
objectSelector (against the object's labels), then spec.matchConditions (all must be true).
spec.variables are evaluated in order and reachable as `variables.<name>`; a validation
whose expression is false denies with its message when validationActions has Deny. An
expression that errors counts as a failure under failurePolicy Fail (the default).

Pods created by controllers are admitted as Pods, so evaluating a workload's pod template
as a Pod gives the same verdict Kyverno's autogen rules give at the controller (they only
move the denial earlier).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import celpy
from celpy import celtypes

from .selectors import matches

_ENV = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


def _program(expression: str) -> Any:
    if expression not in _PROGRAMS:
        _PROGRAMS[expression] = _ENV.program(_ENV.compile(expression))
    return _PROGRAMS[expression]


class CelError(Exception):
    pass


def evaluate_cel(expression: str, activation: dict[str, Any]) -> Any:
    try:
        result = _program(expression).evaluate(activation)
    except celpy.CELParseError as err:
        raise CelError(f"does not compile: {err}") from err
    except celpy.CELEvalError as err:
        raise CelError(str(err.args[0] if err.args else err)) from err
    if isinstance(result, celpy.CELEvalError):
        raise CelError(str(result.args[0] if result.args else result))
    return result


@dataclass(frozen=True)
class Admission:
    """One admission request."""

    obj: dict
    group: str
    version: str
    resource: str  # plural, e.g. "pods"
    namespace_labels: Mapping[str, str] | None  # None for cluster-scoped objects
    operation: str = "CREATE"
    subresource: str = ""


def _rule_matches(rule: Any, req: Admission) -> bool:
    if not isinstance(rule, dict):
        return False

    def has(key: str, value: str) -> bool:
        values = [str(v) for v in rule.get(key) or []]
        return "*" in values or value in values

    if not (has("apiGroups", req.group) and has("apiVersions", req.version) and has("operations", req.operation)):
        return False
    combined = f"{req.resource}/{req.subresource}" if req.subresource else req.resource
    for r in (str(r) for r in rule.get("resources") or []):
        # "*" is every resource, "*/*" every resource and subresource, "pods/*" every
        # subresource of pods, "*/status" that subresource of every resource.
        if r == combined or r == "*/*" or (r == "*" and not req.subresource):
            return True
        base, _, sub = r.partition("/")
        if req.subresource and sub and (base in ("*", req.resource)) and sub in ("*", req.subresource):
            return True
    return False


def _labels(body: Any) -> dict[str, str]:
    meta = body.get("metadata") if isinstance(body, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return {str(k): str(v) for k, v in (labels or {}).items()}


def policy_matches(policy: dict, req: Admission) -> bool:
    constraints = (policy.get("spec") or {}).get("matchConstraints") or {}
    if not any(_rule_matches(r, req) for r in constraints.get("resourceRules") or []):
        return False
    if any(_rule_matches(r, req) for r in constraints.get("excludeResourceRules") or []):
        return False
    ns_selector = constraints.get("namespaceSelector")
    if ns_selector:  # an empty selector matches every namespace and cluster-scoped objects
        if req.resource == "namespaces" and req.group == "":
            ns_labels = _labels(req.obj)
        elif req.namespace_labels is None:
            ns_labels = None
        else:
            ns_labels = dict(req.namespace_labels)
        if ns_labels is not None and not matches(ns_selector, ns_labels):
            return False
    obj_selector = constraints.get("objectSelector")
    if obj_selector and not matches(obj_selector, _labels(req.obj)):
        return False
    return True


def _activation(policy: dict, req: Admission) -> dict[str, Any]:
    meta = req.obj.get("metadata") or {}
    request = {
        "operation": req.operation,
        "namespace": str(meta.get("namespace", "")),
        "name": str(meta.get("name", "")),
        "kind": {"group": req.group, "version": req.version, "kind": str(req.obj.get("kind", ""))},
        "resource": {"group": req.group, "version": req.version, "resource": req.resource},
        "subResource": req.subresource,
        "userInfo": {"username": "", "groups": []},
    }
    activation: dict[str, Any] = {
        "object": celpy.json_to_cel(req.obj),
        "oldObject": None,
        "request": celpy.json_to_cel(request),
    }
    variables: dict[Any, Any] = {}
    activation["variables"] = celtypes.MapType(variables)
    for var in (policy.get("spec") or {}).get("variables") or []:
        name, expression = str(var.get("name")), str(var.get("expression"))
        try:
            variables[celtypes.StringType(name)] = evaluate_cel(expression, activation)
        except CelError as err:
            # A variable is evaluated lazily by the apiserver: only its users fail.
            variables[celtypes.StringType(name)] = celpy.CELEvalError(f"variable {name}: {err}")
        activation["variables"] = celtypes.MapType(variables)
    return activation


def denials(policy: dict, req: Admission) -> list[str]:
    """Why `policy` denies the request (empty: admitted, or the policy does not match)."""
    if not policy_matches(policy, req):
        return []
    spec = policy.get("spec") or {}
    actions = [str(a) for a in spec.get("validationActions") or ["Deny"]]
    fail_closed = str(spec.get("failurePolicy", "Fail")) == "Fail"
    name = str((policy.get("metadata") or {}).get("name", "?"))
    activation = _activation(policy, req)
    for condition in spec.get("matchConditions") or []:
        try:
            if not bool(evaluate_cel(str(condition.get("expression")), activation)):
                return []
        except CelError as err:
            return [f"{name}: matchCondition {condition.get('name')} errors: {err}"] if fail_closed else []
    out = []
    for validation in spec.get("validations") or []:
        expression = str(validation.get("expression"))
        try:
            ok = evaluate_cel(expression, activation)
            failed = not (isinstance(ok, (bool, celtypes.BoolType)) and bool(ok))
            why = " ".join(str(validation.get("message") or f"failed expression: {expression}").split())
        except CelError as err:
            failed, why = fail_closed, f"expression errors: {err}"
        if failed and "Deny" in actions:
            out.append(f"{name}: {why}")
    return out
