"""Day-one checks: what a real K3s host with Flux would get from a rendered tree (issue #22).

Modules:
  selectors  Kubernetes label selectors
  rbac       an RBAC authorizer (rules, bindings, aggregation, escalation checks)
  netpol     a NetworkPolicy evaluator (default deny once a policy selects a pod)
  celpolicy  Kyverno ValidatingPolicy evaluation with a real CEL implementation (celpy)
  render     `helm template` of the pinned upstream charts, with values merged as Flux does
  checks     the checks themselves, run by check_tree.py after its own
"""
