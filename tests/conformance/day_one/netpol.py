"""A NetworkPolicy evaluator (networking.k8s.io/v1), with the API's semantics:

- a pod no policy selects (for a direction) is open in that direction
- once any policy of the pod's namespace selects it with that policy type, only what some
  rule of those policies allows gets through (the union of the rules)
- policyTypes defaults to ["Ingress"], plus "Egress" when the policy has egress rules
- a rule with no `from`/`to` matches every peer; with no `ports` every port
- a peer with only podSelector selects pods of the policy's own namespace; with
  namespaceSelector (and optionally podSelector) pods of the selected namespaces; ipBlock
  peers select addresses, never pods, so they are not matched here (the evaluator only
  models pod-to-pod traffic)
- a port is a number or a named container port of the destination pod, protocol TCP by
  default, with an optional endPort
Traffic flows when the source's egress and the destination's ingress both allow it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from .selectors import matches


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: Mapping[str, str]
    namespace_labels: Mapping[str, str]
    # container port name -> (number, protocol), for named ports
    named_ports: Mapping[str, tuple[int, str]] = field(default_factory=dict)
    what: str = ""

    def text(self) -> str:
        return self.what or f"a pod in {self.namespace} with labels {dict(self.labels)}"


def namespace_labels(name: str, labels: Mapping[str, str] | None = None) -> dict[str, str]:
    """A namespace's labels, with the one the apiserver always sets."""
    out = {str(k): str(v) for k, v in (labels or {}).items()}
    out["kubernetes.io/metadata.name"] = name
    return out


def _types(spec: dict) -> list[str]:
    types = spec.get("policyTypes")
    if isinstance(types, list) and types:
        return [str(t) for t in types]
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _peer_matches(peer: Any, policy_ns: str, other: Pod) -> bool:
    if not isinstance(peer, dict):
        return False
    if "ipBlock" in peer:
        return False
    pod_sel, ns_sel = peer.get("podSelector"), peer.get("namespaceSelector")
    if ns_sel is None:
        return other.namespace == policy_ns and matches(pod_sel or {}, other.labels)
    if not matches(ns_sel, other.namespace_labels):
        return False
    return pod_sel is None or matches(pod_sel, other.labels)


def _port_matches(entry: Any, port: int, protocol: str, dest: Pod) -> bool:
    if not isinstance(entry, dict):
        return False
    if str(entry.get("protocol", "TCP")) != protocol:
        return False
    wanted = entry.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str) and not wanted.isdigit():
        named = dest.named_ports.get(wanted)
        return named is not None and named == (port, protocol)
    start = int(wanted)
    end = int(entry.get("endPort") or start)
    return start <= port <= end


def _rule_allows(rule: Any, peers_key: str, policy_ns: str, other: Pod, port: int, protocol: str, dest: Pod) -> bool:
    if not isinstance(rule, dict):
        return False
    peers = rule.get(peers_key)
    if peers and not any(_peer_matches(p, policy_ns, other) for p in peers):
        return False
    ports = rule.get("ports")
    return not ports or any(_port_matches(p, port, protocol, dest) for p in ports)


@dataclass
class Verdict:
    allowed: bool
    reason: str


def evaluate(policies: Iterable[dict], src: Pod, dst: Pod, port: int, protocol: str = "TCP") -> Verdict:
    """Whether `src` may open a connection to `dst` on port/protocol."""
    policies = [p for p in policies if isinstance(p, dict)]

    def direction(pod: Pod, kind: str, peers_key: str, other: Pod) -> Verdict:
        selecting = []
        for p in policies:
            meta = p.get("metadata") or {}
            spec = p.get("spec") or {}
            if meta.get("namespace") != pod.namespace or kind not in _types(spec):
                continue
            if matches(spec.get("podSelector") or {}, pod.labels):
                selecting.append(p)
        if not selecting:
            return Verdict(True, f"no {kind} policy selects {pod.text()}")
        for p in selecting:
            for rule in (p.get("spec") or {}).get(kind.lower()) or []:
                if _rule_allows(rule, peers_key, pod.namespace, other, port, protocol, dst):
                    return Verdict(True, f"allowed by {p['metadata'].get('name')}")
        names = ", ".join(sorted(str((p.get("metadata") or {}).get("name")) for p in selecting))
        return Verdict(False, f"{kind.lower()} of {pod.text()} is limited by NetworkPolicy {names}, "
                              f"and no rule admits {other.text()} on {port}/{protocol}")

    egress = direction(src, "Egress", "to", dst)
    if not egress.allowed:
        return egress
    return direction(dst, "Ingress", "from", src)
