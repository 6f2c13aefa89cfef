"""Tests of the day-one checks (day_one/): the RBAC and NetworkPolicy evaluators, Kyverno
policy admission with CEL, Flux's values merge and release naming, and the check helpers.
Each test pairs a case that must pass with one that must fail.

    .tools/venv/bin/python tests/conformance/test_day_one.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
EXAMPLE = REPO / "gitops-repo-example"
UPSTREAM = Path(os.environ.get("HEXABASE_UPSTREAM", REPO.parent / "shared" / "upstream"))

sys.dont_write_bytecode = True
sys.path.insert(0, str(HERE))
import yaml  # noqa: E402

from day_one import celpolicy, checks, netpol, rbac  # noqa: E402
from day_one.render import flux_release_name, flux_values, merge  # noqa: E402

RBAC_V1 = "rbac.authorization.k8s.io/v1"


def role(kind: str, name: str, rules: list, ns: str | None = None, labels: dict | None = None, **extra) -> dict:
    meta = {"name": name, **({"namespace": ns} if ns else {}), **({"labels": labels} if labels else {})}
    return {"apiVersion": RBAC_V1, "kind": kind, "metadata": meta, "rules": rules, **extra}


def binding(kind: str, name: str, role_kind: str, role_name: str, subjects: list, ns: str | None = None) -> dict:
    return {"apiVersion": RBAC_V1, "kind": kind, "metadata": {"name": name, **({"namespace": ns} if ns else {})},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name},
            "subjects": subjects}


SA = rbac.Subject.service_account("ws-a", "flux")
SA_REF = {"kind": "ServiceAccount", "name": "flux", "namespace": "ws-a"}


class RbacTest(unittest.TestCase):
    def test_rule_matching(self) -> None:
        rule = rbac.Rule.of({"apiGroups": ["apps"], "resources": ["deployments", "*/scale"], "verbs": ["get", "patch"]})
        self.assertTrue(rbac.rule_allows(rule, rbac.Request("get", "apps", "deployments", "x")))
        self.assertTrue(rbac.rule_allows(rule, rbac.Request("patch", "apps", "statefulsets", "x", subresource="scale")))
        self.assertFalse(rbac.rule_allows(rule, rbac.Request("get", "apps", "deployments", "x", subresource="status")))
        self.assertFalse(rbac.rule_allows(rule, rbac.Request("delete", "apps", "deployments", "x")))
        self.assertFalse(rbac.rule_allows(rule, rbac.Request("get", "", "deployments", "x")))
        named = rbac.Rule.of({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create"], "resourceNames": ["a"]})
        self.assertTrue(rbac.rule_allows(named, rbac.Request("get", "", "secrets", "x", "a")))
        self.assertFalse(rbac.rule_allows(named, rbac.Request("get", "", "secrets", "x", "b")))
        self.assertFalse(rbac.rule_allows(named, rbac.Request("create", "", "secrets", "x")))  # no name on create

    def test_rolebinding_to_clusterrole_is_scoped_to_its_namespace(self) -> None:
        auth = rbac.Authorizer.of([binding("RoleBinding", "b", "ClusterRole", "cluster-admin", [SA_REF], "ws-a")])
        self.assertTrue(auth.allows(SA, rbac.Request("create", "apps", "deployments", "ws-a")))
        self.assertFalse(auth.allows(SA, rbac.Request("create", "apps", "deployments", "ws-b")))
        self.assertFalse(auth.allows(SA, rbac.Request("create", "", "namespaces")))
        self.assertEqual(rbac.cluster_write_problems(auth, SA), [])

    def test_subjects_by_user_and_group_name(self) -> None:
        auth = rbac.Authorizer.of([
            role("ClusterRole", "read", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]),
            binding("ClusterRoleBinding", "u", "ClusterRole", "read", [{"kind": "User", "name": SA.username}]),
        ])
        self.assertTrue(auth.allows(SA, rbac.Request("list", "", "pods")))
        other = rbac.Subject.service_account("ws-b", "flux")
        self.assertFalse(auth.allows(other, rbac.Request("list", "", "pods")))
        auth = rbac.Authorizer.of([
            role("ClusterRole", "read", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]),
            binding("ClusterRoleBinding", "g", "ClusterRole", "read", [{"kind": "Group", "name": "system:serviceaccounts:ws-b"}]),
        ])
        self.assertFalse(auth.allows(SA, rbac.Request("list", "", "pods")))
        self.assertTrue(auth.allows(other, rbac.Request("list", "", "pods")))

    def test_aggregation(self) -> None:
        objects = [
            role("ClusterRole", "bg", [], aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"agg": "true"}}]}),
            role("ClusterRole", "extra", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}], labels={"agg": "true"}),
            role("ClusterRole", "other", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]}], labels={"agg": "no"}),
            binding("ClusterRoleBinding", "b", "ClusterRole", "bg", [SA_REF]),
        ]
        auth = rbac.Authorizer.of(objects)
        self.assertTrue(auth.allows(SA, rbac.Request("create", "", "secrets", "any")))
        self.assertFalse(auth.allows(SA, rbac.Request("create", "", "configmaps", "any")))
        self.assertFalse(rbac.Authorizer.of(objects[:1] + objects[2:]).allows(SA, rbac.Request("create", "", "secrets", "x")))

    def test_may_only_grant_what_it_holds(self) -> None:
        holds = [role("Role", "r", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]},
                                    {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["create"]}], "ws-a"),
                 binding("RoleBinding", "b", "Role", "r", [SA_REF], "ws-a")]
        auth = rbac.Authorizer.of(holds)
        ok = role("Role", "new", [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}], "ws-a")
        self.assertEqual(auth.grant_problems(SA, ok), [])
        too_much = role("Role", "new", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}], "ws-a")
        self.assertEqual(len(auth.grant_problems(SA, too_much)), 1)
        wildcard = role("Role", "new", [{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}], "ws-a")
        self.assertEqual(len(auth.grant_problems(SA, wildcard)), 1, "'*' is only covered by '*'")
        # escalate lifts the rule
        escalate = rbac.Authorizer.of(holds + [
            role("Role", "esc", [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["escalate"]}], "ws-a"),
            binding("RoleBinding", "e", "Role", "esc", [SA_REF], "ws-a")])
        self.assertEqual(escalate.grant_problems(SA, too_much), [])

    def test_aggregation_rule_needs_escalate(self) -> None:
        writer = [role("ClusterRole", "w", [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["create"]}]),
                  binding("ClusterRoleBinding", "w", "ClusterRole", "w", [SA_REF])]
        aggregated = role("ClusterRole", "agg", [], aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]})
        self.assertEqual(len(rbac.Authorizer.of(writer).grant_problems(SA, aggregated)), 1)
        admin = [binding("ClusterRoleBinding", "a", "ClusterRole", "cluster-admin", [SA_REF])]
        self.assertEqual(rbac.Authorizer.of(admin).grant_problems(SA, aggregated), [])

    def test_may_only_bind_what_it_holds_unless_bind(self) -> None:
        objects = [role("ClusterRole", "admin-ish", [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
                   role("Role", "r", [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["*"]}], "ws-a"),
                   binding("RoleBinding", "b", "Role", "r", [SA_REF], "ws-a")]
        new = binding("RoleBinding", "x", "ClusterRole", "admin-ish", [{"kind": "User", "name": "eve"}], "ws-a")
        self.assertTrue(rbac.Authorizer.of(objects).grant_problems(SA, new))
        with_bind = objects + [role("Role", "bind", [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                                                      "verbs": ["bind"], "resourceNames": ["admin-ish"]}], "ws-a"),
                               binding("RoleBinding", "bb", "Role", "bind", [SA_REF], "ws-a")]
        self.assertEqual(rbac.Authorizer.of(with_bind).grant_problems(SA, new), [])

    def test_cluster_write_is_reported(self) -> None:
        auth = rbac.Authorizer.of([
            role("ClusterRole", "nodes", [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["create"]}]),
            binding("ClusterRoleBinding", "b", "ClusterRole", "nodes", [SA_REF])])
        problems = rbac.cluster_write_problems(auth, SA)
        self.assertEqual(len(problems), 1)
        self.assertIn("clusterroles", problems[0])


def pod(ns: str, labels: dict, ns_labels: dict | None = None, ports: dict | None = None) -> netpol.Pod:
    return netpol.Pod(ns, labels, netpol.namespace_labels(ns, ns_labels), ports or {})


def netpol_of(ns: str, spec: dict, name: str = "p") -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec}


class NetworkPolicyTest(unittest.TestCase):
    def test_open_until_selected(self) -> None:
        self.assertTrue(netpol.evaluate([], pod("a", {}), pod("b", {}), 80).allowed)
        deny_all = netpol_of("b", {"podSelector": {}, "policyTypes": ["Ingress"]})
        self.assertFalse(netpol.evaluate([deny_all], pod("a", {}), pod("b", {}), 80).allowed)
        other = netpol_of("b", {"podSelector": {"matchLabels": {"app": "x"}}})
        self.assertTrue(netpol.evaluate([other], pod("a", {}), pod("b", {"app": "y"}), 80).allowed)

    def test_peers_and_ports(self) -> None:
        policy = netpol_of("ws", {"podSelector": {}, "ingress": [
            {"from": [{"podSelector": {}}]},
            {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                       "podSelector": {"matchLabels": {"app": "traefik"}}}],
             "ports": [{"port": "https"}]},
        ]})
        dst = pod("ws", {"app": "vc"}, ports={"https": (8443, "TCP")})
        self.assertTrue(netpol.evaluate([policy], pod("ws", {"any": "1"}), dst, 1).allowed)
        self.assertTrue(netpol.evaluate([policy], pod("kube-system", {"app": "traefik"}), dst, 8443).allowed)
        self.assertFalse(netpol.evaluate([policy], pod("kube-system", {"app": "traefik"}), dst, 8444).allowed)
        self.assertFalse(netpol.evaluate([policy], pod("kube-system", {"app": "dns"}), dst, 8443).allowed)
        self.assertFalse(netpol.evaluate([policy], pod("kube-system", {"app": "traefik"}), dst, 8443, "UDP").allowed)
        # a podSelector-only peer means the policy's own namespace
        self.assertFalse(netpol.evaluate([policy], pod("other", {"any": "1"}), dst, 1).allowed)

    def test_egress_and_end_port(self) -> None:
        egress = netpol_of("ws", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
            {"to": [{"namespaceSelector": {}}], "ports": [{"port": 53, "protocol": "UDP"}, {"port": 1000, "endPort": 2000}]}]})
        self.assertTrue(netpol.evaluate([egress], pod("ws", {}), pod("kube-system", {}), 53, "UDP").allowed)
        self.assertFalse(netpol.evaluate([egress], pod("ws", {}), pod("kube-system", {}), 53, "TCP").allowed)
        self.assertTrue(netpol.evaluate([egress], pod("ws", {}), pod("x", {}), 1500).allowed)
        self.assertFalse(netpol.evaluate([egress], pod("ws", {}), pod("x", {}), 2001).allowed)
        ip_only = netpol_of("ws", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]})
        self.assertFalse(netpol.evaluate([ip_only], pod("ws", {}), pod("x", {}), 1).allowed)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def admission(spec: dict, ns_labels: dict, kind: str = "Pod") -> celpolicy.Admission:
    body = {"apiVersion": "v1", "kind": kind, "metadata": {"name": "p", "namespace": "ws-a"}, "spec": spec}
    return celpolicy.Admission(body, "", "v1", "pods", ns_labels)


SHARED = {"hexabase.ai/plan": "shared-small", "kubernetes.io/metadata.name": "ws-a"}
GOOD_CONTAINER = {"name": "c", "image": "ghcr.io/a/b:1", "resources": {"requests": {"cpu": "1", "memory": "1Mi"}, "limits": {"memory": "1Mi"}}}


class KyvernoPolicyTest(unittest.TestCase):
    """The rendered policies of gitops-repo-example, evaluated with CEL."""

    policies = sorted((EXAMPLE / "infrastructure" / "policies" / "shared-small").glob("*.yaml"))

    def denials(self, spec: dict, ns_labels: dict = SHARED) -> list[str]:
        return [d for p in self.policies for d in celpolicy.denials(load(p), admission(spec, ns_labels))]

    def test_compliant_pod_is_admitted(self) -> None:
        self.assertTrue(self.policies)
        self.assertEqual(self.denials({"containers": [GOOD_CONTAINER]}), [])

    def test_hostile_pods_are_denied(self) -> None:
        cases = {
            "privileged": {"containers": [dict(GOOD_CONTAINER, securityContext={"privileged": True})]},
            "hostPath": {"containers": [GOOD_CONTAINER], "volumes": [{"name": "h", "hostPath": {"path": "/"}}]},
            "hostNetwork": {"containers": [GOOD_CONTAINER], "hostNetwork": True},
            "registry": {"containers": [dict(GOOD_CONTAINER, image="evil.example.com/x:1")]},
            "requests": {"containers": [{"name": "c", "image": "ghcr.io/a/b:1"}]},
            "init registry": {"containers": [GOOD_CONTAINER], "initContainers": [dict(GOOD_CONTAINER, image="evil.example.com/init:1")]},
        }
        for name, spec in cases.items():
            with self.subTest(name):
                self.assertTrue(self.denials(spec))

    def test_namespace_selector_limits_the_policy(self) -> None:
        spec = {"containers": [dict(GOOD_CONTAINER, securityContext={"privileged": True})]}
        self.assertEqual(self.denials(spec, {"kubernetes.io/metadata.name": "kyverno"}), [])
        self.assertEqual(self.denials(spec, {"hexabase.ai/plan": "dedicated-large"}), [])

    def test_resource_rules(self) -> None:
        policy = load(self.policies[0])
        deployment = celpolicy.Admission({"kind": "Deployment", "metadata": {}}, "apps", "v1", "deployments", SHARED)
        self.assertFalse(celpolicy.policy_matches(policy, deployment))
        self.assertFalse(celpolicy.policy_matches(policy, admission({}, SHARED).__class__(
            {"kind": "Pod"}, "", "v1", "pods", SHARED, operation="DELETE")))

    def test_expression_errors_fail_closed(self) -> None:
        policy = {"metadata": {"name": "p"}, "spec": {
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]},
            "validations": [{"expression": "object.spec.nothing.there == 1", "message": "m"}]}}
        self.assertTrue(celpolicy.denials(policy, admission({}, SHARED)))
        policy["spec"]["failurePolicy"] = "Ignore"
        self.assertEqual(celpolicy.denials(policy, admission({}, SHARED)), [])

    def test_generating_policy_reads(self) -> None:
        policy = {"spec": {"variables": [
            {"name": "ns", "expression": "'flux-system'"},
            {"name": "name", "expression": '"git"'},
            {"name": "target", "expression": "object.metadata.name"},
            {"name": "source", "expression": 'resource.Get("v1", "secrets", variables.ns, variables.name)'},
            {"name": "other", "expression": 'resource.Get("apps/v1", "deployments", variables.target, "x")'},
        ]}}
        reads, kinds = checks.generating_policy_reads(policy)
        self.assertEqual(kinds, [("", "secrets"), ("apps", "deployments")])
        # the second read depends on the admitted object: its namespace is unknown statically
        self.assertEqual(reads, [("", "secrets", "flux-system", "git")])


class FluxHelmTest(unittest.TestCase):
    def test_release_name(self) -> None:
        self.assertEqual(flux_release_name({"metadata": {"name": "vcluster"}, "spec": {}}), "vcluster")
        self.assertEqual(flux_release_name({"metadata": {"name": "m"}, "spec": {"targetNamespace": "t"}}), "t-m")
        self.assertEqual(flux_release_name({"metadata": {"name": "m"}, "spec": {"releaseName": "r", "targetNamespace": "t"}}), "r")
        long = flux_release_name({"metadata": {"name": "m" * 30}, "spec": {"targetNamespace": "t" * 30}})
        self.assertEqual(len(long), 53)
        self.assertTrue(long.startswith("t" * 30 + "-" + "m" * 9 + "-"))

    def test_values_from_in_order_then_inline(self) -> None:
        objects = [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}, "data": {"values.yaml": "x: {a: 1, b: 1}\ny: [1]"}},
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "n"}, "data": {"v": "x: {b: 2}\ny: [2]", "p": "3"}},
        ]
        hr = {"metadata": {"name": "r", "namespace": "n"}, "spec": {
            "valuesFrom": [{"kind": "ConfigMap", "name": "a"}, {"kind": "ConfigMap", "name": "b", "valuesKey": "v"},
                           {"kind": "ConfigMap", "name": "b", "valuesKey": "p", "targetPath": "z.w"}],
            "values": {"x": {"c": 3}}}}
        self.assertEqual(flux_values(hr, objects), {"x": {"a": 1, "b": 2, "c": 3}, "y": [2], "z": {"w": "3"}})
        hr["spec"]["valuesFrom"].append({"kind": "Secret", "name": "missing"})
        with self.assertRaises(Exception):
            flux_values(hr, objects)
        hr["spec"]["valuesFrom"][-1]["optional"] = True
        self.assertEqual(flux_values(hr, objects)["x"]["c"], 3)

    def test_merge_replaces_lists_and_scalars(self) -> None:
        self.assertEqual(merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}}), {"a": {"b": 1, "c": [2]}})


class HelpersTest(unittest.TestCase):
    def test_quantities(self) -> None:
        self.assertEqual(checks.same_quantities({"cpu": "1"}, {"cpu": "1000m"}), [])
        self.assertEqual(checks.same_quantities({"m": "1Gi"}, {"m": "1024Mi"}), [])
        self.assertEqual(len(checks.same_quantities({"m": "1G"}, {"m": "1Gi"})), 1)
        self.assertEqual(len(checks.same_quantities({"pods": "100"}, {"pods": "100", "count/pods": "20"})), 1)
        self.assertEqual(len(checks.same_quantities({"pods": "100"}, {})), 1)

    def test_limit_range_defaults_fill_before_validation(self) -> None:
        lr = {"spec": {"limits": [{"type": "Container", "default": {"memory": "512Mi"}, "defaultRequest": {"cpu": "100m"}}]}}
        spec = checks.apply_limit_range({"containers": [{"name": "c"}]}, [lr])
        self.assertEqual(spec["containers"][0]["resources"], {"limits": {"memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "512Mi"}})
        self.assertNotIn("resources", checks.apply_limit_range({"containers": [{"name": "c"}]}, [])["containers"][0])

    def test_pod_security_baseline(self) -> None:
        self.assertEqual(checks.pod_security_problems("baseline", {"containers": [GOOD_CONTAINER]}), [])
        self.assertTrue(checks.pod_security_problems("baseline", {"hostPID": True, "containers": []}))
        self.assertTrue(checks.pod_security_problems("baseline", {"containers": [dict(GOOD_CONTAINER, securityContext={"capabilities": {"add": ["SYS_ADMIN"]}})]}))
        self.assertEqual(checks.pod_security_problems("privileged", {"hostPID": True, "containers": []}), [])

    def test_routes(self) -> None:
        ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "i", "namespace": "ws"},
                   "spec": {"rules": [{"host": "ws.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                            "backend": {"service": {"name": "vcluster", "port": {"number": 443}}}}]}}]}}
        self.assertEqual([(r[1], r[2]) for r in checks._routes_to([ingress], "ws.example.com")], [("vcluster", 443)])
        self.assertEqual(checks._routes_to([ingress], "other.example.com"), [])

    def test_tcp_route_passes_tls_through_on_https(self) -> None:
        route = {"apiVersion": "traefik.io/v1alpha1", "kind": "IngressRouteTCP", "metadata": {"name": "r", "namespace": "ws"},
                 "spec": {"entryPoints": ["websecure"], "routes": [{"match": "HostSNI(`ws.example.com`)",
                          "services": [{"name": "vcluster", "port": 443}]}], "tls": {"passthrough": True}}}
        self.assertEqual([(r[1], r[2]) for r in checks._routes_to([route], "ws.example.com")], [("vcluster", 443)])
        self.assertEqual(checks._route_problems(route), [])
        terminated = dict(route, spec=dict(route["spec"], tls={}))
        self.assertEqual(len(checks._route_problems(terminated)), 1)
        plain = dict(route, spec=dict(route["spec"], entryPoints=["web"]))
        self.assertEqual(len(checks._route_problems(plain)), 1)

    def test_plural(self) -> None:
        self.assertEqual([checks.plural(k) for k in ("NetworkPolicy", "Ingress", "Endpoints", "GitRepository", "Deployment")],
                         ["networkpolicies", "ingresses", "endpoints", "gitrepositories", "deployments"])


def edit_docs(path: Path, change: Callable[[list[Any]], None]) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    change(docs)
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))


def find(docs: list, kind: str, name: str | None = None) -> dict:
    return next(d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name))


def plant_faults(tree: Path) -> dict[str, str]:
    """One fault per day-one check in a copy of the example; returns what each must report."""
    dev = tree / "tenants" / "home" / "acme" / "dev" / "host"

    # 1. render: a valuesFrom source that is not in the tree
    edit_docs(dev / "monitoring.yaml", lambda d: find(d, "HelmRelease")["spec"].setdefault("valuesFrom", []).append(
        {"kind": "ConfigMap", "name": "planted-missing-values"}))
    # 2. versions: Kyverno pinned at a chart version whose CRDs cannot be proven
    edit_docs(tree / "infrastructure" / "controllers" / "controllers.yaml",
              lambda d: find(d, "HelmRelease", "kyverno")["spec"]["chart"]["spec"].update(version="3.6.0"))

    # 3. rbac: a tenant account bound to a ClusterRole that writes CRDs
    def grant(docs: list) -> None:
        docs.append(role("ClusterRole", "planted:crd-writer", [{"apiGroups": ["apiextensions.k8s.io"],
                                                                "resources": ["customresourcedefinitions"], "verbs": ["create"]}]))
        docs.append(binding("ClusterRoleBinding", "planted:crd-writer", "ClusterRole", "planted:crd-writer",
                            [{"kind": "ServiceAccount", "name": "hexabase-flux", "namespace": "ws-acme-dev"}]))
    edit_docs(dev / "namespace.yaml", grant)

    # 4. pods and 5. quotas: a CoreDNS image outside the plan's registries, a chart-default quota key
    def vcluster(docs: list) -> None:
        values = find(docs, "HelmRelease", "vcluster")["spec"]["values"]
        values.setdefault("controlPlane", {}).setdefault("coredns", {}).setdefault("deployment", {})["image"] = "quay.io/planted/coredns:1"
        values.setdefault("policies", {}).setdefault("resourceQuota", {}).setdefault("quota", {})["count/configmaps"] = "7"
        # 7. operations: a release that stalls after its retries, a virtual Kubernetes newer than the host
        release = find(docs, "HelmRelease", "vcluster")["spec"]
        release["install"] = {"remediation": {"retries": 3}}
        values["controlPlane"].setdefault("distro", {}).setdefault("k8s", {})["version"] = "v1.36.0"
    edit_docs(dev / "vcluster.yaml", vcluster)
    # 7. operations: a tenant source that uses the platform's own Git credential
    platform_secret = load(tree / "intent" / "platform.yaml")["spec"]["git"].get("secretName", "flux-system")
    edit_docs(dev / "sources.yaml", lambda d: find(d, "GitRepository")["spec"].update(secretRef={"name": platform_secret}))

    # 6. reach: the workspace's NetworkPolicies only admit the namespace itself
    def fence(docs: list) -> None:
        for d in docs:
            if d.get("kind") == "NetworkPolicy":
                d["spec"]["ingress"] = [{"from": [{"podSelector": {}}]}]
    edit_docs(dev / "network.yaml", fence)

    return {
        "render": "spec.valuesFrom[0]: ConfigMap ws-acme-dev/planted-missing-values key 'values.yaml' is not in the tree",
        "versions": "needs the CRDs of chart kyverno, pinned at 3.6.0, which is not in upstream/charts",
        "rbac": "ServiceAccount ws-acme-dev/hexabase-flux holds cluster-scoped create on customresourcedefinitions",
        "pods": "the vCluster's CoreDNS pod (synced to the host) is denied: restrict-image-registries",
        "quotas": "ResourceQuota count/configmaps: rendered '7', the plan has none",
        "reach": "Flux cannot reach the vCluster API",
        "remediation": "[HelmRelease/ws-acme-dev/vcluster remediation]: spec.install: a failed install stalls after 3 retries",
        "virtual version": "the vCluster runs Kubernetes v1.36.0 (ghcr.io/loft-sh/kubernetes:v1.36.0), newer than the K3s 1.35.0 host",
        "credentials": f"spec.secretRef {platform_secret!r} is the platform's Git credential",
    }


class PlantedFaultsTest(unittest.TestCase):
    """The real checker on a copy of gitops-repo-example with one fault per check planted."""

    def test_every_planted_fault_is_reported(self) -> None:
        for tool in ("kubectl", "helm"):
            if not os.access(REPO / ".tools" / "bin" / tool, os.X_OK):
                raise AssertionError(f".tools/bin/{tool} is missing: run scripts/tools.sh")
        if not UPSTREAM.is_dir():
            raise AssertionError(f"no upstream snapshot at {UPSTREAM}: set HEXABASE_UPSTREAM")
        with tempfile.TemporaryDirectory(prefix="day-one-") as tmp:
            tree = Path(tmp) / "tree"
            shutil.copytree(EXAMPLE, tree)
            expected = plant_faults(tree)
            result = subprocess.run(
                [sys.executable, str(HERE / "check_tree.py"), "--tree", str(tree), "--upstream", str(UPSTREAM)],
                capture_output=True, text=True, timeout=600,
            )
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        for check, reason in expected.items():
            with self.subTest(check=check):
                self.assertIn(reason, result.stdout, result.stdout[-6000:])


if __name__ == "__main__":
    unittest.main(verbosity=1)
