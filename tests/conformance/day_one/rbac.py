"""A Kubernetes RBAC authorizer over the objects a tree (and its charts) applies.

It follows the rules of https://kubernetes.io/docs/reference/access-authn-authz/rbac/ and of
the apiserver's RBAC code (rbac/v1 helpers and registry/rbac/validation):

- a rule allows a request when verb, API group, resource (with subresource) and, if the rule
  lists any, resource name all match; `*` matches anything; a rule resource "*/scale"
  matches the scale subresource of every resource; a rule with resourceNames never allows
  a request without a name (create, list, watch, deletecollection)
- a ClusterRoleBinding grants its role everywhere; a RoleBinding grants its Role, or the
  ClusterRole it references, in the binding's namespace only
- an aggregated ClusterRole holds the rules of every ClusterRole its
  aggregationRule.clusterRoleSelectors select (the controller fills them in)
- a service account subject also matches the User `system:serviceaccount:<ns>:<name>` and
  the Groups `system:serviceaccounts`, `system:serviceaccounts:<ns>`, `system:authenticated`
- escalation prevention: who creates or updates a Role/ClusterRole must hold every
  permission in it (in the role's namespace, or cluster-wide for a ClusterRole), unless it
  may `escalate` that role; who creates a binding must hold every permission of the
  referenced role in the binding's scope, unless it may `bind` that role; a ClusterRole with an
  aggregationRule needs `escalate` outright. Coverage works
  on single permissions, with `*` only covered by `*` (registry/rbac/validation.Covers).

Bootstrap roles are not in a rendered tree; BOOTSTRAP_CLUSTER_ROLES holds the one the
Hexabase tree binds (cluster-admin).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from .selectors import matches

RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Rule:
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @staticmethod
    def of(body: Any) -> "Rule":
        body = body if isinstance(body, dict) else {}

        def strs(key: str) -> tuple[str, ...]:
            value = body.get(key) or []
            return tuple(str(v) for v in value) if isinstance(value, list) else ()

        return Rule(strs("apiGroups"), strs("resources"), strs("verbs"), strs("resourceNames"),
                    strs("nonResourceURLs"))

    def text(self) -> str:
        if self.non_resource_urls:
            return f"{{nonResourceURLs: {list(self.non_resource_urls)}, verbs: {list(self.verbs)}}}"
        out = f"{{apiGroups: {list(self.api_groups)}, resources: {list(self.resources)}, verbs: {list(self.verbs)}"
        if self.resource_names:
            out += f", resourceNames: {list(self.resource_names)}"
        return out + "}"


CLUSTER_ADMIN = (Rule(("*",), ("*",), ("*",)), Rule(non_resource_urls=("*",), verbs=("*",)))
BOOTSTRAP_CLUSTER_ROLES: dict[str, tuple[Rule, ...]] = {"cluster-admin": CLUSTER_ADMIN}


@dataclass(frozen=True)
class Request:
    verb: str
    group: str
    resource: str
    namespace: str | None = None  # None: a cluster-scoped object, or all namespaces
    name: str = ""
    subresource: str = ""

    def text(self) -> str:
        res = self.resource + (f"/{self.subresource}" if self.subresource else "")
        where = f" in namespace {self.namespace}" if self.namespace else " cluster-wide"
        name = f" {self.name!r}" if self.name else ""
        group = self.group or "core"
        return f"{self.verb} {res}{name} ({group}){where}"


def _resource_matches(rule_resources: Iterable[str], resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in rule_resources:
        if r == "*" or r == combined:
            return True
        if subresource and r == f"*/{subresource}":
            return True
    return False


def rule_allows(rule: Rule, req: Request) -> bool:
    if rule.non_resource_urls:
        return False
    if "*" not in rule.verbs and req.verb not in rule.verbs:
        return False
    if "*" not in rule.api_groups and req.group not in rule.api_groups:
        return False
    if not _resource_matches(rule.resources, req.resource, req.subresource):
        return False
    if rule.resource_names:
        return bool(req.name) and req.name in rule.resource_names
    return True


def _url_covered(owner: str, url: str) -> bool:
    if owner == "*" or owner == url:
        return True
    return owner.endswith("*") and url.startswith(owner[:-1])


def atoms(rule: Rule) -> Iterator[Rule]:
    """A rule split into single permissions (BreakdownRule)."""
    for verb in rule.verbs:
        if rule.non_resource_urls:
            for url in rule.non_resource_urls:
                yield Rule(verbs=(verb,), non_resource_urls=(url,))
            continue
        for group in rule.api_groups:
            for resource in rule.resources:
                if rule.resource_names:
                    for name in rule.resource_names:
                        yield Rule((group,), (resource,), (verb,), (name,))
                else:
                    yield Rule((group,), (resource,), (verb,))


def _atom_covered(owner: Rule, atom: Rule) -> bool:
    verb = atom.verbs[0]
    if "*" not in owner.verbs and verb not in owner.verbs:
        return False
    if atom.non_resource_urls:
        return any(_url_covered(o, atom.non_resource_urls[0]) for o in owner.non_resource_urls)
    if owner.non_resource_urls and not owner.resources:
        return False
    group, resource = atom.api_groups[0], atom.resources[0]
    if "*" not in owner.api_groups and group not in owner.api_groups:
        return False
    base, _, sub = resource.partition("/")
    if not ("*" in owner.resources or resource in owner.resources
            or (sub and f"*/{sub}" in owner.resources)):
        return False
    if not owner.resource_names:
        return True
    return bool(atom.resource_names) and atom.resource_names[0] in owner.resource_names


def uncovered(owner_rules: Iterable[Rule], rules: Iterable[Rule]) -> list[Rule]:
    """The single permissions in `rules` that `owner_rules` do not cover."""
    owner_rules = list(owner_rules)
    return [a for r in rules for a in atoms(r) if not any(_atom_covered(o, a) for o in owner_rules)]


@dataclass(frozen=True)
class Subject:
    """Who makes a request: a service account, or a user with groups."""

    kind: str  # "ServiceAccount" or "User"
    name: str
    namespace: str = ""
    groups: tuple[str, ...] = ()

    @staticmethod
    def service_account(namespace: str, name: str) -> "Subject":
        return Subject("ServiceAccount", name, namespace)

    @property
    def username(self) -> str:
        if self.kind == "ServiceAccount":
            return f"system:serviceaccount:{self.namespace}:{self.name}"
        return self.name

    @property
    def all_groups(self) -> tuple[str, ...]:
        if self.kind == "ServiceAccount":
            return ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}",
                    "system:authenticated", *self.groups)
        return ("system:authenticated", *self.groups)

    def text(self) -> str:
        if self.kind == "ServiceAccount":
            return f"ServiceAccount {self.namespace}/{self.name}"
        return f"User {self.name}"

    def is_bound_by(self, subject: Any, binding_namespace: str | None) -> bool:
        if not isinstance(subject, dict):
            return False
        kind, name = subject.get("kind"), str(subject.get("name", ""))
        if kind == "ServiceAccount":
            # A RoleBinding's service account subject defaults to the binding's namespace.
            ns = subject.get("namespace") or binding_namespace or ""
            return self.kind == "ServiceAccount" and (ns, name) == (self.namespace, self.name)
        if kind == "User":
            return name == self.username
        if kind == "Group":
            return name in self.all_groups
        return False


def _body_meta(body: dict) -> dict:
    meta = body.get("metadata")
    return meta if isinstance(meta, dict) else {}


@dataclass
class Binding:
    namespace: str | None  # None for a ClusterRoleBinding
    name: str
    role_kind: str
    role_name: str
    subjects: list


@dataclass
class Authorizer:
    """RBAC over a set of objects (dicts with apiVersion/kind/metadata)."""

    cluster_roles: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    roles: dict[tuple[str, str], tuple[Rule, ...]] = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)

    @staticmethod
    def of(objects: Iterable[dict], bootstrap: dict[str, tuple[Rule, ...]] | None = None) -> "Authorizer":
        auth = Authorizer()
        cluster_roles: dict[str, dict] = {}
        for body in objects:
            if not isinstance(body, dict) or not str(body.get("apiVersion", "")).startswith(RBAC_GROUP + "/"):
                continue
            meta, kind = _body_meta(body), body.get("kind")
            name, ns = str(meta.get("name", "")), meta.get("namespace")
            if kind == "ClusterRole":
                cluster_roles[name] = body
            elif kind == "Role" and ns:
                auth.roles[(ns, name)] = tuple(Rule.of(r) for r in body.get("rules") or [])
            elif kind in ("RoleBinding", "ClusterRoleBinding"):
                ref = body.get("roleRef") or {}
                if kind == "RoleBinding" and not ns:
                    continue
                auth.bindings.append(Binding(
                    ns if kind == "RoleBinding" else None, name, str(ref.get("kind", "")),
                    str(ref.get("name", "")), list(body.get("subjects") or []),
                ))
        roles = dict(BOOTSTRAP_CLUSTER_ROLES if bootstrap is None else bootstrap)
        for name, body in cluster_roles.items():
            roles[name] = tuple(Rule.of(r) for r in body.get("rules") or [])
        # Aggregation: the aggregated role's rules are replaced by the union of the rules of
        # the ClusterRoles its selectors pick (not transitively: the controller does that
        # over time, and the selected roles' own rules are what it copies).
        for name, body in cluster_roles.items():
            selectors = ((body.get("aggregationRule") or {}).get("clusterRoleSelectors")) or []
            if not selectors:
                continue
            rules: list[Rule] = []
            for other_name, other in sorted(cluster_roles.items()):
                if other_name == name:
                    continue
                labels = {str(k): str(v) for k, v in (_body_meta(other).get("labels") or {}).items()}
                if any(matches(s, labels) for s in selectors):
                    rules += roles[other_name]
            roles[name] = tuple(rules)
        auth.cluster_roles = roles
        return auth

    def role_rules(self, kind: str, name: str, namespace: str | None) -> tuple[Rule, ...] | None:
        if kind == "ClusterRole":
            return self.cluster_roles.get(name)
        if kind == "Role" and namespace:
            return self.roles.get((namespace, name))
        return None

    def rules_for(self, subject: Subject, namespace: str | None) -> list[Rule]:
        """The rules `subject` holds for requests in `namespace` (None: cluster-wide)."""
        out: list[Rule] = []
        for b in self.bindings:
            if b.namespace is not None and b.namespace != namespace:
                continue
            if b.namespace is None and b.role_kind != "ClusterRole":
                continue
            if not any(subject.is_bound_by(s, b.namespace) for s in b.subjects):
                continue
            out += self.role_rules(b.role_kind, b.role_name, b.namespace) or ()
        return out

    def allows(self, subject: Subject, req: Request) -> bool:
        return any(rule_allows(r, req) for r in self.rules_for(subject, req.namespace))

    # -- escalation prevention -----------------------------------------------------------

    def grant_problems(self, subject: Subject, body: dict) -> list[str]:
        """Why `subject` may not create `body` (a Role, ClusterRole or binding) because
        it would grant what the subject does not hold."""
        kind, meta = body.get("kind"), _body_meta(body)
        name, ns = str(meta.get("name", "")), meta.get("namespace") or None
        if kind in ("Role", "ClusterRole"):
            scope = ns if kind == "Role" else None
            resource = "roles" if kind == "Role" else "clusterroles"
            if self.allows(subject, Request("escalate", RBAC_GROUP, resource, scope, name)):
                return []
            if kind == "ClusterRole" and body.get("aggregationRule"):
                # registry/rbac/clusterrole/policybased: an aggregationRule needs escalate
                return [f"{subject.text()} may not create ClusterRole {name} with an aggregationRule "
                        "(it needs escalate on clusterroles)"]
            missing = uncovered(self.rules_for(subject, scope), (Rule.of(r) for r in body.get("rules") or []))
            return [f"{subject.text()} would grant {a.text()} in {kind} {name} without holding it "
                    f"(and may not escalate {resource})" for a in _dedupe(missing)]
        if kind in ("RoleBinding", "ClusterRoleBinding"):
            ref = body.get("roleRef") or {}
            ref_kind, ref_name = str(ref.get("kind", "")), str(ref.get("name", ""))
            scope = ns if kind == "RoleBinding" else None
            resource = "roles" if ref_kind == "Role" else "clusterroles"
            if self.allows(subject, Request("bind", RBAC_GROUP, resource, scope, ref_name)):
                return []
            rules = self.role_rules(ref_kind, ref_name, ns)
            if rules is None:
                return [f"{kind} {name} references {ref_kind} {ref_name}, which does not exist"]
            missing = uncovered(self.rules_for(subject, scope), rules)
            return [f"{subject.text()} would bind {ref_kind} {ref_name} granting {a.text()} "
                    f"without holding it (and may not bind it)" for a in _dedupe(missing)]
        return []


def _dedupe(rules: list[Rule], limit: int = 5) -> list[Rule]:
    out: list[Rule] = []
    for r in rules:
        if r not in out:
            out.append(r)
    return out[:limit]


# Cluster-scoped kinds whose write access lets one tenant affect every other tenant.
CLUSTER_WRITE_TARGETS: tuple[tuple[str, str], ...] = (
    ("", "namespaces"), ("", "nodes"), ("", "persistentvolumes"),
    (RBAC_GROUP, "clusterroles"), (RBAC_GROUP, "clusterrolebindings"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
    ("storage.k8s.io", "storageclasses"), ("scheduling.k8s.io", "priorityclasses"),
    ("policies.kyverno.io", "validatingpolicies"), ("policies.kyverno.io", "generatingpolicies"),
    ("policies.kyverno.io", "mutatingpolicies"), ("kyverno.io", "clusterpolicies"),
)
WRITE_VERBS = ("create", "update", "patch", "delete")


def cluster_write_problems(auth: Authorizer, subject: Subject) -> list[str]:
    """Cluster-scoped write access (and impersonation) `subject` holds."""
    out = []
    for group, resource in CLUSTER_WRITE_TARGETS:
        verbs = [v for v in WRITE_VERBS if auth.allows(subject, Request(v, group, resource))]
        if verbs:
            out.append(f"{subject.text()} holds cluster-scoped {'/'.join(verbs)} on {resource} "
                       f"({group or 'core'}): a tenant identity must not write cluster-scoped objects")
    for resource in ("users", "groups", "serviceaccounts"):
        if auth.allows(subject, Request("impersonate", "", resource)):
            out.append(f"{subject.text()} may impersonate {resource}")
    return out
