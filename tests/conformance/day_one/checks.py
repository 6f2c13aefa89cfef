"""The day-one checks (issue #22): what a K3s 1.35 host running Flux gets from the tree.

  1. render     every HelmRelease whose chart is in upstream/charts is rendered with the
                real `helm template` (values merged as Flux merges them) and what comes out
                is validated strictly; other charts are a notice ("not checked: ...")
  2. versions   every apiVersion/kind applied to the host is a Kubernetes built-in or
                served by a CRD that Flux or a pinned chart installs
  3. rbac       every identity that applies objects (Flux Kustomizations and HelmReleases
                by their service accounts, Kyverno's background controller for each
                GeneratingPolicy) holds what it needs, may only grant what it holds, and
                no tenant identity writes cluster-scoped objects
  4. pods       every pod the platform starts (chart workloads, what a vCluster syncs to
                the host, Functions) is admitted by the Kyverno ValidatingPolicies and the
                Pod Security level of its namespace; a table of hostile tenant pods is denied
  5. quotas     the ResourceQuota and LimitRange Helm renders for a vCluster are the plan's
  6. reach      kubectl -> the vCluster API through a route, DNS from tenant pods, Flux ->
                vCluster API, Knative ingress -> Functions, all admitted by NetworkPolicy;
                the DNS record the kubeconfig needs is named in the tree's README
  7. operations the platform's Git credential reaches no tenant; no release stalls after its
                retries; no vCluster is newer than the host

Each check is counted in the report; notices (what cannot be checked) go to stderr.
"""

from __future__ import annotations

import concurrent.futures
import copy
import re
import tarfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import yaml

from . import celpolicy, netpol, rbac
from .render import Charts, Render, ValuesError, flux_release_name, flux_release_namespace, flux_values, merge

K3S_KUBE_VERSION = "1.35.0"
# API groups K3s installs CRDs for on its own: its bundled Traefik, its Helm controller, and
# its addon manifests.
K3S_API_VERSIONS = ("traefik.io/v1alpha1", "helm.cattle.io/v1", "k3s.cattle.io/v1")
FLUX_NS = "flux-system"

# Flux bootstrap binds cluster-admin to its controllers (flux2 manifests/rbac/rbac.yaml,
# ClusterRoleBinding cluster-reconciler-flux-system); a Kustomization or HelmRelease
# without serviceAccountName runs as them.
FLUX_BOOTSTRAP_RBAC = [{
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
    "metadata": {"name": "cluster-reconciler-flux-system"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
    "subjects": [{"kind": "ServiceAccount", "name": "kustomize-controller", "namespace": FLUX_NS},
                 {"kind": "ServiceAccount", "name": "helm-controller", "namespace": FLUX_NS}],
}]
FLUX_DEFAULT_SA = {"Kustomization": "kustomize-controller", "HelmRelease": "helm-controller"}
# What kustomize-controller and helm-controller do to what they apply: server-side apply
# (get, create, patch), upgrades (update), pruning and uninstall (delete), health checks
# and drift detection (list, watch).
APPLY_VERBS = ("get", "list", "watch", "create", "update", "patch", "delete")

# CRDs a chart installs outside its templates. The kyverno chart's kyverno-api dependency
# (the policies.kyverno.io CRDs) is removed from the packaged chart in upstream/charts (it
# cannot be fetched offline) and kept as upstream/crds/kyverno-<appVersion>; the Knative
# operator installs Knative Serving of its own version (upstream/crds/knative-serving-v<version>).
AUXILIARY_CRDS: dict[str, Callable[[str, str], str]] = {
    "kyverno": lambda version, app: f"kyverno-{app}",
    "knative-operator": lambda version, app: f"knative-serving-v{version.removeprefix('v')}",
}

# vCluster's CoreDNS image by virtual Kubernetes minor (loft-sh/vcluster
# pkg/constants/coredns.go, CoreDNSVersionMap), prefixed by controlPlane.advanced.defaultImageRegistry.
VCLUSTER_COREDNS_IMAGES = {
    "1.36": "coredns/coredns:1.14.2", "1.35": "coredns/coredns:1.14.1", "1.34": "coredns/coredns:1.12.1",
    "1.33": "coredns/coredns:1.12.0", "1.32": "coredns/coredns:1.11.3",
}
# Knative Serving's queue-proxy sidecar, added to every Function pod.
KNATIVE_QUEUE_IMAGE = "gcr.io/knative-releases/knative.dev/serving/cmd/queue"

# Pods of K3s and the platform that open connections into workspace namespaces.
TRAEFIK = ("kube-system", {"app.kubernetes.io/name": "traefik", "app.kubernetes.io/instance": "traefik-kube-system"})
KUBE_DNS = ("kube-system", {"k8s-app": "kube-dns"})
FLUX_CONTROLLERS = [(FLUX_NS, {"app": "kustomize-controller"}), (FLUX_NS, {"app": "helm-controller"})]
KNATIVE_INGRESS = [("knative-serving", {"app": "3scale-kourier-gateway"}), ("knative-serving", {"app": "activator"})]
KNATIVE_QUEUE_PORT = 8012

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod"}


def plural(kind: str) -> str:
    lower = kind.lower()
    if lower in ("endpoints",):
        return lower
    if lower.endswith("y") and not lower.endswith(("ay", "ey", "oy", "uy")):
        return lower[:-1] + "ies"
    if lower.endswith(("s", "x", "ch", "sh")):
        return lower + "es"
    return lower + "s"


def group_of(body: dict) -> str:
    api = str(body.get("apiVersion", ""))
    return api.rsplit("/", 1)[0] if "/" in api else ""


def meta(body: dict) -> dict:
    m = body.get("metadata")
    return m if isinstance(m, dict) else {}


def label(body: dict) -> str:
    parts = [str(body.get("kind", "?"))]
    if meta(body).get("namespace"):
        parts.append(str(meta(body)["namespace"]))
    parts.append(str(meta(body).get("name", "?")))
    return "/".join(parts)


# --------------------------------------------------------------------------------------
# Quantities


_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "n": Fraction(1, 10**9), "u": Fraction(1, 10**6), "m": Fraction(1, 1000), "": 1,
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")


def quantity(value: Any) -> Fraction | None:
    match = _QUANTITY.match(str(value).strip())
    if not match:
        return None
    number, suffix = Fraction(match.group(1)), match.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * Fraction(10) ** int(suffix[1:])
    return number * _SUFFIX[suffix]


def same_quantities(a: dict, b: dict) -> list[str]:
    out = []
    for key in sorted(set(a) | set(b)):
        if key not in a:
            out.append(f"{key}: rendered {b[key]!r}, the plan has none")
        elif key not in b:
            out.append(f"{key}: the plan has {a[key]!r}, rendered none")
        elif quantity(a[key]) is None or quantity(a[key]) != quantity(b[key]):
            out.append(f"{key}: the plan has {a[key]!r}, rendered {b[key]!r}")
    return out


# --------------------------------------------------------------------------------------
# Context


@dataclass
class Release:
    hr: dict
    path: str
    chart: str
    version: str
    name: str
    namespace: str
    remote: bool  # spec.kubeConfig: installed into the workspace's vCluster
    render: Render | None = None
    values: dict = field(default_factory=dict)
    problem: str | None = None
    _objects: list[dict] | None = None

    @property
    def ns(self) -> str:
        return str(meta(self.hr).get("namespace", ""))

    def label(self) -> str:
        return label(self.hr)

    def objects(self, schemas: Any) -> list[dict]:
        """The rendered objects, namespaced ones in the release namespace (computed once;
        callers must not change them)."""
        if self._objects is not None:
            return self._objects
        out: list[dict] = []
        for body in (self.render.objects if self.render else []):
            body = copy.deepcopy(body)
            m = body.setdefault("metadata", {})
            if not m.get("namespace") and not schemas.is_cluster_scoped(group_of(body), str(body.get("kind"))):
                m["namespace"] = self.namespace
            out.append(body)
        self._objects = out
        return out


@dataclass
class Context:
    tree: Path
    upstream: Path
    report: Any  # check_tree.Report
    schemas: Any  # check_tree.Schemas
    charts: Charts
    workdir: Path
    pool: concurrent.futures.Executor
    effective: list  # check_tree.Obj: everything the tree applies
    applications: list  # (Flux Kustomization Obj, [Obj of its build])
    object_problems: Callable[[Any], list[str]]
    make_obj: Callable[[dict, str], Any]
    platform: dict = field(default_factory=dict)
    releases: list[Release] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    _host_bodies: list[dict] | None = None
    _crd_dirs: dict[str, list[dict]] = field(default_factory=dict)

    def check(self, path: str, lbl: str, reasons: list[str]) -> None:
        self.report.check(path, lbl, reasons)

    def notice(self, path: str, lbl: str, text: str) -> None:
        line = f"{path}: [{lbl}]: not checked: {text}"
        if line not in self.notices:
            self.notices.append(line)

    def vcluster(self, ns: str) -> Release | None:
        return next((r for r in self.releases if r.chart == "vcluster" and r.ns == ns and not r.remote), None)

    def host_bodies(self) -> list[dict]:
        """Everything applied to the host: the tree's objects and the host releases' renders
        (computed once, after the renders; callers must not change them)."""
        if self._host_bodies is not None:
            return self._host_bodies
        remote_paths = {id(o) for ks, objs in self.applications if ks.spec.get("kubeConfig") for o in objs}
        out = [o.body for o in self.effective if id(o) not in remote_paths]
        for rel in self.releases:
            if not rel.remote:
                out += rel.objects(self.schemas)
        self._host_bodies = out
        return out

    def namespace_labels(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for body in self.host_bodies():
            if body.get("kind") == "Namespace" and body.get("apiVersion") == "v1":
                name = str(meta(body).get("name"))
                out[name] = netpol.namespace_labels(name, meta(body).get("labels"))
        for rel in self.releases:
            if not rel.remote:
                out.setdefault(rel.namespace, netpol.namespace_labels(rel.namespace))
        return out

    def plan_of(self, ns_labels: dict[str, str]) -> dict | None:
        name = ns_labels.get("hexabase.ai/plan")
        plans = [p for p in self.platform.get("plans") or [] if isinstance(p, dict)]
        return next((p for p in plans if p.get("name") == name), None)

    def cluster_domain(self, path: str) -> str | None:
        parts = Path(path).parts
        if len(parts) < 2 or parts[0] != "tenants":
            return None
        clusters = [c for c in self.platform.get("clusters") or [] if isinstance(c, dict)]
        cluster = next((c for c in clusters if c.get("name") == parts[1]), None)
        return str(cluster.get("domain")) if cluster and cluster.get("domain") else None


def load_platform(tree: Path) -> dict:
    path = tree / "intent" / "platform.yaml"
    if not path.is_file():
        return {}
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return {}
    spec = doc.get("spec") if isinstance(doc, dict) else None
    return spec if isinstance(spec, dict) else {}


# --------------------------------------------------------------------------------------
# 1. Render


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def chart_of(hr: dict) -> tuple[str, str]:
    spec = _dict(_dict(_dict(hr.get("spec")).get("chart")).get("spec"))
    return str(spec.get("chart", "")), str(spec.get("version", ""))


def collect_releases(ctx: Context) -> None:
    seen: set[str] = set()
    all_bodies = [o.body for o in ctx.effective]
    for obj in ctx.effective:
        if not obj.is_flux("helm", "HelmRelease"):
            continue
        key = f"{obj.namespace}/{obj.name}|{obj.path}"
        if key in seen:
            continue
        seen.add(key)
        chart, version = chart_of(obj.body)
        rel = Release(obj.body, obj.path, chart, version, flux_release_name(obj.body),
                      flux_release_namespace(obj.body), bool(obj.spec.get("kubeConfig")))
        if not chart:
            ctx.notice(obj.path, obj.label(), "the release uses spec.chartRef, which this checker does not resolve")
            continue
        try:
            rel.values = flux_values(obj.body, all_bodies)
        except ValuesError as err:
            rel.problem = str(err)
        ctx.releases.append(rel)


def render_releases(ctx: Context) -> None:
    available = ctx.charts.available()
    futures = {}
    for rel in ctx.releases:
        if rel.problem or ctx.charts.path(rel.chart, rel.version) is None:
            continue
        futures[id(rel)] = ctx.pool.submit(ctx.charts.render, rel.chart, rel.version, rel.name, rel.namespace,
                                           rel.values, ctx.workdir)
    for rel in ctx.releases:
        reasons: list[str] = []
        if rel.problem:
            reasons.append(rel.problem)
        elif id(rel) not in futures:
            if rel.chart in available:
                reasons.append(f"{rel.chart} {rel.version} is not in upstream/charts (have "
                               f"{', '.join(available[rel.chart])}): add it to prove this pin")
            else:
                ctx.notice(rel.path, rel.label(), f"{rel.chart} {rel.version} is not in upstream/charts: "
                           "its objects, RBAC, pods and CRDs are unchecked")
                continue
        else:
            rel.render = futures[id(rel)].result()
            if rel.render.error:
                # check (e) of check_tree.py already names the value the vcluster schema rejects
                if not (rel.chart == "vcluster" and "values don't meet the specifications" in rel.render.error):
                    reasons.append(rel.render.error)
                rel.render = None
        ctx.check(rel.path, rel.label(), reasons)

    # The kinds rendered charts define (CRDs in the render) validate against those CRDs.
    for rel in ctx.releases:
        for body in rel.render.objects if rel.render else []:
            if body.get("kind") == "CustomResourceDefinition":
                ctx.schemas.add_crd_doc(body, f"chart {rel.chart} {rel.version}")
    for rel in ctx.releases:
        if not rel.render:
            continue
        problems = []
        for body in rel.objects(ctx.schemas):
            obj = ctx.make_obj(body, rel.path)
            for p in ctx.object_problems(obj):
                if "plaintext Secret" in p:
                    continue  # a chart's own generated Secrets are not committed to Git
                problems.append(f"rendered {obj.label()}: {p}")
        ctx.check(rel.path, f"{rel.label()} rendered", problems)


# --------------------------------------------------------------------------------------
# 2. Versions


def _crd_versions(body: dict) -> list[tuple[str, str, str]]:
    spec = body.get("spec") or {}
    kind = (spec.get("names") or {}).get("kind")
    return [(str(spec.get("group")), str(v.get("name")), str(kind))
            for v in spec.get("versions") or [] if v.get("served")]


def _upstream_crd_dir(ctx: Context, name: str) -> list[dict]:
    from check_tree import _crd_docs, _read_text  # noqa: PLC0415 (the checker is the caller)

    if name in ctx._crd_dirs:
        return ctx._crd_dirs[name]
    root = ctx.upstream / "crds" / name
    docs: list[dict] = ctx._crd_dirs.setdefault(name, [])
    for path in sorted(root.glob("*")) if root.is_dir() else []:
        if path.name.endswith((".yaml", ".yml", ".yaml.gz")):
            docs += _crd_docs(_read_text(path))
    return docs


def chart_crds(ctx: Context, chart: str, version: str, rendered: Render | None) -> tuple[list[dict], str | None]:
    """The CRDs a chart version installs, or (.., why unknown)."""
    if ctx.charts.path(chart, version) is None:
        return [], f"{chart} {version} is not in upstream/charts"
    if rendered is None:
        rendered = ctx.charts.render(chart, version, chart, chart, {}, ctx.workdir)
        if rendered.error:
            return [], rendered.error
    crds = [o for o in rendered.objects if o.get("kind") == "CustomResourceDefinition"]
    if chart in AUXILIARY_CRDS:
        aux = AUXILIARY_CRDS[chart](version, rendered.app_version)
        docs = _upstream_crd_dir(ctx, aux)
        if not docs:
            return crds, f"{chart} {version} needs upstream/crds/{aux}, which is missing"
        crds += docs
    return crds, None


def check_versions(ctx: Context) -> None:
    served: dict[tuple[str, str, str], str] = {}
    for name in sorted(p.name for p in (ctx.upstream / "crds").glob("fluxcd-*")):
        for doc in _upstream_crd_dir(ctx, name):
            for gvk in _crd_versions(doc):
                served[gvk] = f"Flux ({name})"
    # Which chart provides which API group, for every chart in upstream (any version).
    providers: dict[str, set[str]] = {}
    available = ctx.charts.available()
    for chart, versions in available.items():
        crds, _ = chart_crds(ctx, chart, versions[-1], None)
        for doc in crds:
            for group, _, _ in _crd_versions(doc):
                providers.setdefault(group, set()).add(chart)
    pinned: dict[str, tuple[str, str]] = {}  # chart -> (version, where)
    for rel in ctx.releases:
        if rel.remote:
            continue
        pinned.setdefault(rel.chart, (rel.version, rel.path))
        crds, why = chart_crds(ctx, rel.chart, rel.version, rel.render)
        for doc in crds:
            for gvk in _crd_versions(doc):
                served.setdefault(gvk, f"chart {rel.chart} {rel.version}")

    def problem(body: dict, remote_crds: dict | None) -> str | None:
        group, kind = group_of(body), str(body.get("kind", ""))
        version = str(body.get("apiVersion", "")).rsplit("/", 1)[-1]
        if ctx.schemas.builtin_validator(str(body.get("apiVersion", "")), kind) is not None:
            return None
        if remote_crds is not None:
            if (group, version, kind) in remote_crds:
                return None
            return f"{group}/{version} {kind} is applied inside a vCluster, where only built-ins and the CRDs of the same release exist"
        if (group, version, kind) in served:
            return None
        for chart in sorted(providers.get(group, ())):
            if chart not in pinned:
                return f"{group}/{version} {kind} needs the CRDs of chart {chart}, which the tree does not install"
            pin, _ = pinned[chart]
            if ctx.charts.path(chart, pin) is None:
                return (f"{group}/{version} {kind} needs the CRDs of chart {chart}, pinned at {pin}, which is not "
                        f"in upstream/charts (have {', '.join(available[chart])}): cannot prove {pin} serves it")
            return f"chart {chart} {pin} does not serve {group}/{version} {kind}"
        return None  # unknown kinds are check (c)'s (ALLOWED_UNKNOWN_KINDS)

    remote_ids = {id(o) for ks, objs in ctx.applications if ks.spec.get("kubeConfig") for o in objs}
    seen: set[tuple] = set()
    for obj in ctx.effective:
        key = (obj.path, obj.api_version, obj.kind)
        if key in seen:
            continue
        seen.add(key)
        p = problem(obj.body, {} if id(obj) in remote_ids else None)
        ctx.check(obj.path, f"{obj.label()} version", [p] if p else [])
    for rel in ctx.releases:
        if not rel.render:
            continue
        own = {gvk: "" for o in rel.render.objects if o.get("kind") == "CustomResourceDefinition" for gvk in _crd_versions(o)}
        problems = []
        for body in rel.render.objects:
            p = problem(body, own if rel.remote else None)
            if p and p not in problems:
                problems.append(f"rendered {label(body)}: {p}")
        ctx.check(rel.path, f"{rel.label()} versions", problems)


# --------------------------------------------------------------------------------------
# 3. RBAC


def _remote_rbac(ctx: Context, ns: str) -> list[dict]:
    """RBAC inside the vCluster of workspace namespace `ns`: what the vCluster deploys itself
    (experimental.deploy.vcluster.manifests) and what remote releases and Kustomizations apply."""
    out: list[dict] = []
    vc = ctx.vcluster(ns)
    if vc is not None:
        manifests = (((vc.values.get("experimental") or {}).get("deploy") or {}).get("vcluster") or {}).get("manifests")
        if isinstance(manifests, str):
            out += [d for d in yaml.safe_load_all(manifests) if isinstance(d, dict)]
    return out


def _subject_for(flux_obj: dict) -> rbac.Subject:
    kind = str(flux_obj.get("kind"))
    sa = (flux_obj.get("spec") or {}).get("serviceAccountName")
    if sa:
        return rbac.Subject.service_account(str(meta(flux_obj).get("namespace")), str(sa))
    return rbac.Subject.service_account(FLUX_NS, FLUX_DEFAULT_SA[kind])


def _needs(ctx: Context, auth: rbac.Authorizer, subject: rbac.Subject, bodies: list[dict],
           extra: list[rbac.Request]) -> list[str]:
    problems: list[str] = []
    for body in bodies:
        group, kind = group_of(body), str(body.get("kind", ""))
        ns = meta(body).get("namespace") or None
        if kind == "CustomResourceDefinition" or ctx.schemas.is_cluster_scoped(group, kind):
            ns = None
        missing = [v for v in APPLY_VERBS
                   if not auth.allows(subject, rbac.Request(v, group, plural(kind), ns, str(meta(body).get("name", ""))))]
        if missing:
            problems.append(f"{subject.text()} may not {'/'.join(missing)} {plural(kind)} "
                            f"{'in ' + ns if ns else 'cluster-wide'} (to apply {label(body)})")
        if group == rbac.RBAC_GROUP and not missing:
            problems += auth.grant_problems(subject, body)
    for req in extra:
        if not auth.allows(subject, req):
            problems.append(f"{subject.text()} may not {req.text()}")
    return problems


def check_rbac(ctx: Context) -> None:
    host = ctx.host_bodies() + FLUX_BOOTSTRAP_RBAC
    remote_ids = {id(o) for ks, objs in ctx.applications if ks.spec.get("kubeConfig") for o in objs}

    def authorizer(objects: list[dict], own: list[dict]) -> rbac.Authorizer:
        own_ids = {id(o) for o in own}
        return rbac.Authorizer.of(o for o in objects if id(o) not in own_ids)

    # Flux Kustomizations.
    for ks, objs in ctx.applications:
        subject = _subject_for(ks.body)
        bodies = [o.body for o in objs]
        if ks.spec.get("kubeConfig"):
            ns = ks.namespace or ""
            if not ks.spec.get("serviceAccountName"):
                ctx.notice(ks.path, ks.label(), "applies into a vCluster as the kubeconfig's own identity")
                continue
            user = rbac.Subject("User", subject.username)
            remote = _remote_rbac(ctx, ns) + [b for k2, o2 in ctx.applications if k2.spec.get("kubeConfig")
                                              and k2.namespace == ns for b in (x.body for x in o2)]
            ctx.check(ks.path, f"{ks.label()} rbac", _needs(ctx, authorizer(remote, bodies), user, bodies, []))
            continue
        ctx.check(ks.path, f"{ks.label()} rbac", _needs(ctx, authorizer(host, bodies), subject, bodies, []))

    # Flux HelmReleases.
    for rel in ctx.releases:
        if not rel.render:
            continue
        subject = _subject_for(rel.hr)
        bodies = [b for b in rel.objects(ctx.schemas)]
        spec = rel.hr.get("spec") or {}
        storage = str(spec.get("storageNamespace") or rel.ns)
        extra = [rbac.Request(v, "", "secrets", storage) for v in ("get", "list", "create", "update", "delete")]
        if (spec.get("install") or {}).get("createNamespace"):
            extra.append(rbac.Request("create", "", "namespaces", None, rel.namespace))
        if rel.remote:
            user = rbac.Subject("User", subject.username)
            remote = _remote_rbac(ctx, rel.ns) + [b for k2, o2 in ctx.applications if k2.spec.get("kubeConfig")
                                                  and k2.namespace == rel.ns for b in (x.body for x in o2)]
            ctx.check(rel.path, f"{rel.label()} rbac", _needs(ctx, authorizer(remote, []), user, bodies, extra))
            continue
        own_ids = {id(b) for b in bodies}
        ctx.check(rel.path, f"{rel.label()} rbac",
                  _needs(ctx, rbac.Authorizer.of(b for b in host if id(b) not in own_ids), subject, bodies, extra))

    # Kyverno's background controller, for every GeneratingPolicy.
    kyverno = next((r for r in ctx.releases if r.chart == "kyverno" and not r.remote), None)
    host_auth = rbac.Authorizer.of(host)
    ns_labels = ctx.namespace_labels()
    for obj in ctx.effective:
        if (obj.group, obj.kind) != ("policies.kyverno.io", "GeneratingPolicy"):
            continue
        if kyverno is None or kyverno.render is None:
            pin = f"{kyverno.chart} {kyverno.version}" if kyverno else "kyverno (not installed by the tree)"
            ctx.check(obj.path, f"{obj.label()} rbac",
                      [f"cannot prove Kyverno's background controller may run this policy: {pin} is not in upstream/charts"])
            continue
        sa = next((b for b in kyverno.objects(ctx.schemas) if b.get("kind") == "ServiceAccount"
                   and (meta(b).get("labels") or {}).get("app.kubernetes.io/component") == "background-controller"), None)
        if sa is None:
            ctx.check(obj.path, f"{obj.label()} rbac", ["the kyverno chart renders no background-controller service account"])
            continue
        subject = rbac.Subject.service_account(str(meta(sa).get("namespace")), str(meta(sa).get("name")))
        reads, kinds = generating_policy_reads(obj.body)
        requests = [rbac.Request("get", g, r, ns, n) for g, r, ns, n in reads]
        targets = sorted(name for name, labels in ns_labels.items() if celpolicy.policy_matches(
            obj.body, celpolicy.Admission({"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": name, "labels": labels}}, "", "v1", "namespaces", None)))
        for ns in targets:
            for g, r in kinds:
                # A clone keeps its source's name, so the copy is read, changed and deleted by that
                # name (RBAC resourceNames may narrow those verbs); create, list and watch have none.
                names = sorted({n for g2, r2, _, n in reads if (g2, r2) == (g, r)}) or [""]
                requests += [rbac.Request(v, g, r, ns) for v in ("list", "watch", "create")]
                requests += [rbac.Request(v, g, r, ns, n) for v in ("get", "update", "patch", "delete") for n in names]
        problems = [f"{subject.text()} may not {req.text()} (for {obj.label()})"
                    for req in requests if not host_auth.allows(subject, req)]
        ctx.check(obj.path, f"{obj.label()} rbac", problems[:12] + ([f"... and {len(problems) - 12} more"] if len(problems) > 12 else []))

    # No tenant identity writes cluster-scoped objects.
    tenants: dict[str, set[rbac.Subject]] = {}
    for body in host:
        ns = str(meta(body).get("namespace") or "")
        if body.get("kind") == "ServiceAccount" and ns.startswith("ws-"):
            tenants.setdefault(ns, set()).add(rbac.Subject.service_account(ns, str(meta(body).get("name"))))
        if body.get("kind") in ("RoleBinding", "ClusterRoleBinding"):
            for s in body.get("subjects") or []:
                sns = str(s.get("namespace") or ns)
                if isinstance(s, dict) and s.get("kind") == "ServiceAccount" and sns.startswith("ws-"):
                    tenants.setdefault(sns, set()).add(rbac.Subject.service_account(sns, str(s.get("name"))))
    for ns, subjects in sorted(tenants.items()):
        problems = [p for s in sorted(subjects, key=lambda s: s.name) for p in rbac.cluster_write_problems(host_auth, s)]
        ctx.check(f"tenants ({ns})", f"Namespace/{ns} tenant identities", problems)


_GET = re.compile(r'resource\.Get\(\s*"([^"]*)"\s*,\s*"([^"]*)"\s*,\s*([^,]+?)\s*,\s*([^)]+?)\s*\)')


def generating_policy_reads(policy: dict) -> tuple[list[tuple[str, str, str, str]], list[tuple[str, str]]]:
    """(group, resource, namespace, name) of every resource.Get in the policy's variables,
    resolving arguments that are string literals or variables holding one; and the
    (group, resource) kinds it generates from them."""
    variables = {str(v.get("name")): str(v.get("expression")) for v in (policy.get("spec") or {}).get("variables") or []}

    def resolve(arg: str) -> str | None:
        arg = arg.strip()
        if arg.startswith("variables."):
            arg = variables.get(arg.removeprefix("variables."), "")
        try:
            value = celpolicy.evaluate_cel(arg, {})
        except celpolicy.CelError:
            return None
        return str(value)

    reads, kinds = [], []
    for expr in variables.values():
        for api, resource, ns_arg, name_arg in _GET.findall(expr):
            group = api.rsplit("/", 1)[0] if "/" in api else ""
            ns, name = resolve(ns_arg), resolve(name_arg)
            if ns is not None and name is not None:
                reads.append((group, resource, ns, name))
            if (group, resource) not in kinds:
                kinds.append((group, resource))
    return reads, kinds


# --------------------------------------------------------------------------------------
# 4. Pods against the policies


def pod_specs(body: dict) -> list[tuple[dict, dict]]:
    """(pod metadata, pod spec) of a workload."""
    kind, spec = body.get("kind"), body.get("spec") or {}
    if kind == "Pod":
        return [(meta(body), spec)]
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template = spec.get("template") or {}
    if kind in WORKLOAD_KINDS and isinstance(template, dict) and template.get("spec"):
        return [(template.get("metadata") or {}, template["spec"])]
    return []


def apply_limit_range(spec: dict, limit_ranges: list[dict]) -> dict:
    """What the LimitRanger admission plugin does before validating webhooks run: fill in
    container requests and limits from the namespace's LimitRange defaults."""
    spec = copy.deepcopy(spec)
    for lr in limit_ranges:
        for item in (lr.get("spec") or {}).get("limits") or []:
            if item.get("type") != "Container":
                continue
            defaults, default_requests = item.get("default") or {}, item.get("defaultRequest") or {}
            for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
                res = c.setdefault("resources", {})
                limits, requests = res.setdefault("limits", {}), res.setdefault("requests", {})
                for k, v in defaults.items():
                    limits.setdefault(k, v)
                for k, v in default_requests.items():
                    requests.setdefault(k, v)
                for k, v in limits.items():  # a request defaults to its limit
                    requests.setdefault(k, v)
                if not limits:
                    res.pop("limits")
                if not requests:
                    res.pop("requests")
    return spec


BASELINE_CAPABILITIES = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                         "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}


def pod_security_problems(level: str, spec: dict) -> list[str]:
    """The Pod Security Standards checks of `baseline` (also part of `restricted`) that a
    rendered pod can fail: host namespaces, privileged, hostPath, host ports, capabilities."""
    if level not in ("baseline", "restricted"):
        return []
    out = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            out.append(f"Pod Security {level}: {key} is forbidden")
    for v in spec.get("volumes") or []:
        if isinstance(v, dict) and "hostPath" in v:
            out.append(f"Pod Security {level}: hostPath volume {v.get('name')} is forbidden")
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(f"Pod Security {level}: container {c.get('name')} is privileged")
        added = set((sc.get("capabilities") or {}).get("add") or []) - BASELINE_CAPABILITIES
        if added:
            out.append(f"Pod Security {level}: container {c.get('name')} adds capabilities {sorted(added)}")
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.append(f"Pod Security {level}: container {c.get('name')} uses hostPort {p['hostPort']}")
    return out


@dataclass
class PodCase:
    path: str
    what: str
    namespace: str
    metadata: dict
    spec: dict


def vcluster_synced_pods(ctx: Context, rel: Release) -> list[PodCase]:
    """Pods the vCluster creates in its host namespace that no chart template shows: CoreDNS
    and the /etc/hosts rewrite init container it adds to StatefulSet pods."""
    defaults = _chart_defaults(ctx, rel.chart, rel.version)
    values = merge(defaults, rel.values)
    cp = values.get("controlPlane") or {}
    advanced = cp.get("advanced") or {}
    registry = str(advanced.get("defaultImageRegistry") or "")
    if registry and not registry.endswith("/"):
        registry += "/"
    out = []
    coredns = cp.get("coredns") or {}
    if coredns.get("enabled", True) and not coredns.get("embedded"):
        deployment = coredns.get("deployment") or {}
        image = deployment.get("image")
        if not image:
            k8s = str((((cp.get("distro") or {}).get("k8s") or {}).get("version")) or "")
            if not k8s:
                images = [str(c.get("image", "")) for o in (rel.render.objects if rel.render else [])
                          for _, s in pod_specs(o) for c in (s.get("initContainers") or []) + (s.get("containers") or [])
                          if "/kubernetes:" in str(c.get("image", ""))]
                k8s = images[0].rsplit(":", 1)[-1] if images else ""
            minor = ".".join(k8s.removeprefix("v").split(".")[:2])
            image = registry + VCLUSTER_COREDNS_IMAGES.get(minor, "coredns/coredns")
        security = coredns.get("security") or {}
        container = {"name": "coredns", "image": image, "resources": deployment.get("resources") or {},
                     "securityContext": security.get("containerSecurityContext") or {}}
        spec = {"containers": [container], "securityContext": security.get("podSecurityContext") or {}}
        out.append(PodCase(rel.path, "the vCluster's CoreDNS pod (synced to the host)", rel.namespace,
                           {"labels": {"k8s-app": "vcluster-kube-dns"}}, spec))
    rewrite = ((((values.get("sync") or {}).get("toHost") or {}).get("pods") or {}).get("rewriteHosts")) or {}
    if rewrite.get("enabled", True):
        init = rewrite.get("initContainer") or {}
        img = init.get("image") or {}
        image = img if isinstance(img, str) else "/".join(
            p for p in (str(img.get("registry") or registry.rstrip("/")), str(img.get("repository", ""))) if p
        ) + (f":{img['tag']}" if img.get("tag") else "")
        container = {"name": "vcluster-rewrite-hosts", "image": image, "resources": init.get("resources") or {}}
        out.append(PodCase(rel.path, "the /etc/hosts rewrite init container the vCluster adds to StatefulSet pods",
                           rel.namespace, {"labels": {}}, {"initContainers": [container], "containers": []}))
    return out


def _chart_defaults(ctx: Context, chart: str, version: str) -> dict:
    path = ctx.charts.path(chart, version)
    if path is None:
        return {}
    with tarfile.open(path) as tar:
        member = next((m for m in tar.getmembers() if m.name == f"{chart}/values.yaml"), None)
        return (yaml.safe_load(tar.extractfile(member).read()) or {}) if member else {}  # type: ignore[union-attr]


def function_pods(ctx: Context) -> list[PodCase]:
    """Knative Services (Functions): the user containers plus the queue-proxy sidecar."""
    queue_resources: dict = {"requests": {}, "limits": {}}
    for obj in ctx.effective:
        if (obj.group, obj.kind) == ("operator.knative.dev", "KnativeServing"):
            deployment = ((obj.spec.get("config") or {}).get("deployment")) or {}
            for key, (section, res) in {"queue-sidecar-cpu-request": ("requests", "cpu"),
                                        "queue-sidecar-memory-request": ("requests", "memory"),
                                        "queue-sidecar-cpu-limit": ("limits", "cpu"),
                                        "queue-sidecar-memory-limit": ("limits", "memory")}.items():
                if key in deployment:
                    queue_resources[section][res] = deployment[key]
    queue_resources = {k: v for k, v in queue_resources.items() if v}
    out = []
    for obj in ctx.effective:
        if (obj.group, obj.kind) != ("serving.knative.dev", "Service"):
            continue
        template = obj.spec.get("template") or {}
        spec = copy.deepcopy(template.get("spec") or {})
        spec["containers"] = list(spec.get("containers") or []) + [
            {"name": "queue-proxy", "image": f"{KNATIVE_QUEUE_IMAGE}:{{version}}", "resources": queue_resources,
             "ports": [{"name": "http-queueadm", "containerPort": 8022}, {"name": "queue-port", "containerPort": KNATIVE_QUEUE_PORT}]}
        ]
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        labels["serving.knative.dev/service"] = obj.name
        out.append(PodCase(obj.path, f"Function {obj.name} (with Knative's queue-proxy)", obj.namespace or "",
                           {"labels": labels}, spec))
    return out


def admission_problems(ctx: Context, case: PodCase, policies: list[dict], ns_labels: dict[str, dict[str, str]],
                       limit_ranges: dict[str, list[dict]]) -> list[str]:
    labels = ns_labels.get(case.namespace, netpol.namespace_labels(case.namespace))
    spec = apply_limit_range(case.spec, limit_ranges.get(case.namespace, []))
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "checked", "namespace": case.namespace, "labels": case.metadata.get("labels") or {}},
           "spec": spec}
    req = celpolicy.Admission(pod, "", "v1", "pods", labels)
    out = [d for p in policies for d in celpolicy.denials(p, req)]
    out += pod_security_problems(labels.get("pod-security.kubernetes.io/enforce", ""), spec)
    return out


def check_pods(ctx: Context) -> None:
    host = ctx.host_bodies()
    policies = [b for b in host if (group_of(b), b.get("kind")) == ("policies.kyverno.io", "ValidatingPolicy")]
    ns_labels = ctx.namespace_labels()
    limit_ranges: dict[str, list[dict]] = {}
    for b in host:
        if b.get("kind") == "LimitRange" and b.get("apiVersion") == "v1":
            limit_ranges.setdefault(str(meta(b).get("namespace")), []).append(b)

    cases: list[PodCase] = []
    for rel in ctx.releases:
        if not rel.render:
            continue
        # A release into a vCluster runs its pods in the vCluster; the syncer creates them
        # in the workspace's host namespace, where the host's policies apply.
        for body in rel.objects(ctx.schemas):
            for pod_meta, spec in pod_specs(body):
                ns = rel.ns if rel.remote else str(meta(body).get("namespace") or rel.namespace)
                what = f"{label(body)} of {rel.chart} {rel.version}" + (" (synced from the vCluster)" if rel.remote else "")
                cases.append(PodCase(rel.path, what, ns, pod_meta, spec))
        if rel.chart == "vcluster" and not rel.remote:
            cases += vcluster_synced_pods(ctx, rel)
    cases += function_pods(ctx)

    by_path: dict[tuple[str, str], list[str]] = {}
    for case in cases:
        by_path.setdefault((case.path, case.namespace), [])
        for p in admission_problems(ctx, case, policies, ns_labels, limit_ranges):
            by_path[(case.path, case.namespace)].append(f"{case.what} is denied: {p}")
    for (path, ns), problems in sorted(by_path.items()):
        ctx.check(path, f"pods in {ns}", problems)

    # Hostile tenant pods in every workspace namespace with a plan must be denied.
    for ns, labels in sorted(ns_labels.items()):
        plan = ctx.plan_of(labels)
        if plan is None:
            continue
        registries = [str(r) for r in plan.get("allowedRegistries") or []]
        base_image = (registries[0] if registries else "ghcr.io/") + "tenant/app:1.0"
        container = {"name": "app", "image": base_image,
                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "64Mi"}}}
        base = {"containers": [container]}

        def variant(change: Callable[[dict], None]) -> dict:
            spec = copy.deepcopy(base)
            change(spec)
            return spec

        table = {
            "a privileged container": ("disallow-privileged", variant(lambda s: s["containers"][0].update(securityContext={"privileged": True}))),
            "a hostPath volume": ("disallow-host-path", variant(lambda s: s.update(volumes=[{"name": "h", "hostPath": {"path": "/"}}]))),
            "hostNetwork": ("disallow-host-namespaces", variant(lambda s: s.update(hostNetwork=True))),
            "an image from a registry outside the plan": ("restrict-image-registries", variant(lambda s: s["containers"][0].update(image="evil.example.com/miner:1"))),
            "no requests or limits": ("require-requests-limits", variant(lambda s: s["containers"][0].pop("resources"))),
        }
        problems = []
        where = next((o.path for o in ctx.effective if o.kind == "Namespace" and o.name == ns), f"tenants ({ns})")
        ok = admission_problems(ctx, PodCase(where, "", ns, {"labels": {}}, base), policies, ns_labels, limit_ranges)
        if ok:
            problems.append(f"a compliant tenant pod is denied: {'; '.join(ok)}")
        for what, (policy, spec) in table.items():
            if policy not in (plan.get("policies") or []):
                continue
            denied = admission_problems(ctx, PodCase(where, what, ns, {"labels": {}}, spec), policies, ns_labels, limit_ranges)
            if denied:
                continue
            if policy == "require-requests-limits":
                filled = apply_limit_range(spec, limit_ranges.get(ns, []))
                res = filled["containers"][0].get("resources") or {}
                if {"cpu", "memory"} <= set(res.get("requests") or {}) and "memory" in (res.get("limits") or {}):
                    continue  # the LimitRange fills in what is missing: admitted with defaults
            problems.append(f"plan {plan.get('name')} lists {policy}, yet a tenant pod with {what} is admitted in {ns}")
        ctx.check(where, f"Namespace/{ns} tenant pods", problems)


# --------------------------------------------------------------------------------------
# 5. Quotas


QUOTA_KEYS = {"requestsCpu": "requests.cpu", "requestsMemory": "requests.memory", "limitsCpu": "limits.cpu",
              "limitsMemory": "limits.memory", "requestsStorage": "requests.storage", "pods": "pods",
              "services": "services", "persistentVolumeClaims": "persistentvolumeclaims"}
LIMIT_KEYS = {"defaultCpu": ("default", "cpu"), "defaultMemory": ("default", "memory"),
              "defaultRequestCpu": ("defaultRequest", "cpu"), "defaultRequestMemory": ("defaultRequest", "memory"),
              "maxCpu": ("max", "cpu"), "maxMemory": ("max", "memory"),
              "minCpu": ("min", "cpu"), "minMemory": ("min", "memory")}


def check_quotas(ctx: Context) -> None:
    ns_labels = ctx.namespace_labels()
    for rel in ctx.releases:
        if rel.chart != "vcluster" or rel.remote or not rel.render:
            continue
        plan = ctx.plan_of(ns_labels.get(rel.namespace, {}))
        if plan is None:
            ctx.notice(rel.path, rel.label(), f"namespace {rel.namespace} has no hexabase.ai/plan label naming a plan "
                       "of intent/platform.yaml: quotas not compared")
            continue
        objects = rel.objects(ctx.schemas)
        problems = []
        want_quota = {QUOTA_KEYS.get(k, k): v for k, v in (plan.get("hostQuota") or {}).items()}
        quotas = [o for o in objects if o.get("kind") == "ResourceQuota"]
        got_quota: dict = {}
        for q in quotas:
            got_quota.update(((q.get("spec") or {}).get("hard")) or {})
        problems += [f"ResourceQuota {p}" for p in same_quantities(want_quota, got_quota)]
        want_lr: dict = {}
        for k, v in (plan.get("hostLimitRange") or {}).items():
            section, res = LIMIT_KEYS.get(k, (k, ""))
            want_lr[f"{section}.{res}"] = v
        got_lr: dict = {}
        for lr in (o for o in objects if o.get("kind") == "LimitRange"):
            for item in (lr.get("spec") or {}).get("limits") or []:
                for section in ("default", "defaultRequest", "max", "min", "maxLimitRequestRatio"):
                    for res, v in (item.get(section) or {}).items():
                        got_lr[f"{section}.{res}"] = v
        problems += [f"LimitRange {p}" for p in same_quantities(want_lr, got_lr)]
        ctx.check(rel.path, f"{rel.label()} quota of plan {plan.get('name')}", problems)


# --------------------------------------------------------------------------------------
# 6. Reachability


def _pod_of(ns: str, labels: dict, ns_labels: dict[str, dict[str, str]], spec: dict | None = None, what: str = "") -> netpol.Pod:
    named = {}
    for c in (spec or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name"):
                named[str(p["name"])] = (int(p.get("containerPort", 0)), str(p.get("protocol", "TCP")))
    return netpol.Pod(ns, {str(k): str(v) for k, v in (labels or {}).items()},
                      ns_labels.get(ns, netpol.namespace_labels(ns)), named, what)


def _routes_to(bodies: list[dict], host: str) -> list[tuple[dict, str, Any]]:
    """(route object, backend service name, backend port) for every route of `host`."""
    out = []
    for b in bodies:
        kind, spec = b.get("kind"), b.get("spec") or {}
        if kind == "Ingress" and group_of(b) == "networking.k8s.io":
            for rule in spec.get("rules") or []:
                if rule.get("host") != host:
                    continue
                for p in ((rule.get("http") or {}).get("paths")) or []:
                    svc = ((p.get("backend") or {}).get("service")) or {}
                    port = (svc.get("port") or {})
                    out.append((b, str(svc.get("name")), port.get("number", port.get("name"))))
        elif kind == "IngressRouteTCP":
            for route in spec.get("routes") or []:
                if f"`{host}`" in str(route.get("match", "")):
                    for s in route.get("services") or []:
                        out.append((b, str(s.get("name")), s.get("port")))
        elif kind == "TLSRoute":
            if host in (spec.get("hostnames") or []):
                for rule in spec.get("rules") or []:
                    for ref in rule.get("backendRefs") or []:
                        out.append((b, str(ref.get("name")), ref.get("port")))
    return out


# K3s's Traefik listens for HTTPS on the entry point "websecure" (port 443), the kubeconfig's port.
TRAEFIK_HTTPS_ENTRYPOINT = "websecure"


def _route_problems(route: dict) -> list[str]:
    """A TCP route to the vCluster API must pass TLS through: the API server terminates TLS
    itself (its certificate carries the workspace's host name; kubectl may present a client
    certificate), and it must listen where kubectl connects."""
    if route.get("kind") != "IngressRouteTCP":
        return []
    spec = route.get("spec") or {}
    out = []
    if not ((spec.get("tls") or {}).get("passthrough") is True):
        out.append(f"{label(route)} does not set spec.tls.passthrough: true, so Traefik would terminate the "
                   "vCluster API's TLS with its own certificate")
    entry_points = spec.get("entryPoints")
    if entry_points and TRAEFIK_HTTPS_ENTRYPOINT not in entry_points:
        out.append(f"{label(route)} listens on {entry_points}, not on K3s Traefik's {TRAEFIK_HTTPS_ENTRYPOINT} (443), "
                   "where the kubeconfig's https:// server connects")
    return out


def check_dns_documented(ctx: Context) -> None:
    """The kubeconfig's server, ws-<org>-<ws>.<cluster domain>, needs a DNS record nothing in
    the tree creates: the tree's README must tell the platform engineer to make *.<domain>."""
    readme = ctx.tree / "README.md"
    text = readme.read_text() if readme.is_file() else ""
    domains: dict[str, str] = {}
    for rel in ctx.releases:
        if rel.chart == "vcluster" and not rel.remote and (domain := ctx.cluster_domain(rel.path)):
            domains.setdefault(domain, Path(rel.path).parts[1])
    for domain, cluster in sorted(domains.items()):
        wanted = f"*.{domain}"
        ctx.check("README.md", f"cluster {cluster} DNS", [] if wanted in text else [
            f"kubeconfigs point at https://ws-<org>-<ws>.{domain}, which needs a DNS record {wanted} for the "
            f"host's ingress; README.md does not name {wanted}"])


# --------------------------------------------------------------------------------------
# 7. Operations: credentials, remediation, versions


def check_git_credentials(ctx: Context) -> None:
    """The platform's Git credential (platform.yaml spec.git.secretName in flux-system, the key
    `flux bootstrap` writes with) must not reach a tenant namespace: neither cloned there by a
    GeneratingPolicy nor named by a tenant's GitRepository."""
    secret = str((ctx.platform.get("git") or {}).get("secretName") or "flux-system")
    ns_labels = ctx.namespace_labels()
    tenant_namespaces = sorted(n for n, labels in ns_labels.items() if "toolkit.fluxcd.io/tenant" in labels)
    for obj in ctx.effective:
        if (obj.group, obj.kind) == ("policies.kyverno.io", "GeneratingPolicy"):
            reads, _ = generating_policy_reads(obj.body)
            targets = [n for n in tenant_namespaces if celpolicy.policy_matches(obj.body, celpolicy.Admission(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": ns_labels[n]}},
                "", "v1", "namespaces", None))]
            leaks = [f"clones Secret {FLUX_NS}/{secret}, the platform's Git credential, into tenant namespaces "
                     f"{', '.join(targets)}: a tenant could read (and with a deploy key, write) the whole repository"
                     for g, r, ns, name in reads if (g, r, ns, name) == ("", "secrets", FLUX_NS, secret) and targets]
            ctx.check(obj.path, f"{obj.label()} credentials", leaks)
        elif obj.is_flux("source", "GitRepository") and (obj.namespace or "") in tenant_namespaces:
            ref = str((obj.spec.get("secretRef") or {}).get("name") or "")
            ctx.check(obj.path, f"{obj.label()} credentials", [
                f"spec.secretRef {ref!r} is the platform's Git credential: a tenant source needs a read-only credential of its own"
            ] if ref == secret else [])


def check_remediation(ctx: Context) -> None:
    """No release stalls for good after a failure: helm-controller stops retrying once
    install/upgrade remediation retries run out (the default is 0, `retries: 3` stalls after 3)
    unless the strategy is RetryOnFailure or retries is negative (forever)."""
    for rel in ctx.releases:
        spec = rel.hr.get("spec") or {}
        problems = []
        for action in ("install", "upgrade"):
            conf = spec.get(action) or {}
            if (conf.get("strategy") or {}).get("name") == "RetryOnFailure":
                continue
            retries = (conf.get("remediation") or {}).get("retries", 0)
            if not (isinstance(retries, int) and retries < 0):
                problems.append(f"spec.{action}: a failed {action} stalls after {retries} retries until someone "
                                f"intervenes (set spec.{action}.strategy.name: RetryOnFailure or remediation.retries: -1)")
        ctx.check(rel.path, f"{rel.label()} remediation", problems)


def _minor(version: str) -> tuple[int, int] | None:
    match = re.match(r"^v?(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_virtual_versions(ctx: Context) -> None:
    """A vCluster's virtual Kubernetes must not be newer than the K3s host it runs on."""
    host = _minor(K3S_KUBE_VERSION)
    for rel in ctx.releases:
        if rel.chart != "vcluster" or rel.remote or not rel.render:
            continue
        images = [str(c.get("image", "")) for o in rel.render.objects for _, spec in pod_specs(o)
                  for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
                  if "/kubernetes:" in str(c.get("image", ""))]
        problems = []
        for image in images:
            virtual = _minor(image.rsplit(":", 1)[-1])
            if virtual and host and virtual > host:
                problems.append(f"the vCluster runs Kubernetes {image.rsplit(':', 1)[-1]} ({image}), newer than the "
                                f"K3s {K3S_KUBE_VERSION} host: pin controlPlane.distro.k8s.version")
        ctx.check(rel.path, f"{rel.label()} virtual Kubernetes version", problems)


def _service_target(bodies: list[dict], ns: str, name: str, port: Any) -> tuple[dict, Any] | None:
    svc = next((b for b in bodies if b.get("kind") == "Service" and b.get("apiVersion") == "v1"
                and meta(b).get("name") == name and meta(b).get("namespace") == ns), None)
    if svc is None:
        return None
    for p in (svc.get("spec") or {}).get("ports") or []:
        if port in (p.get("port"), p.get("name")) or port is None:
            return svc, p.get("targetPort", p.get("port"))
    return None


def check_reachability(ctx: Context) -> None:
    host = ctx.host_bodies()
    policies = [b for b in host if b.get("kind") == "NetworkPolicy" and group_of(b) == "networking.k8s.io"]
    ns_labels = ctx.namespace_labels()
    for rel in ctx.releases:
        if rel.chart != "vcluster" or rel.remote or not rel.render:
            continue
        ns = rel.namespace
        problems: list[str] = []
        sts = next((b for b in rel.objects(ctx.schemas) if b.get("kind") in ("StatefulSet", "Deployment")), None)
        if sts is None:
            ctx.check(rel.path, f"{rel.label()} reachability", ["the vcluster chart renders no control plane workload"])
            continue
        pod_meta, pod_spec = pod_specs(sts)[0]
        vc_pod = _pod_of(ns, pod_meta.get("labels") or {}, ns_labels, pod_spec, f"the vCluster API pod in {ns}")
        api_port = next((int(p["containerPort"]) for c in pod_spec.get("containers") or []
                         for p in c.get("ports") or [] if p.get("name") == "https"), 8443)

        domain = ctx.cluster_domain(rel.path)
        if domain is None:
            ctx.notice(rel.path, rel.label(), "no cluster domain in intent/platform.yaml: the kubeconfig server is unknown")
        else:
            hostname = f"{ns}.{domain}"
            routes = _routes_to(host, hostname)
            if not routes:
                problems.append(f"kubectl cannot reach the vCluster: nothing routes {hostname} (the kubeconfig's server "
                                "https://" + hostname + ") to it: no Ingress, IngressRouteTCP or TLSRoute has that host")
            for route, svc_name, port in routes:
                problems += _route_problems(route)
                target = _service_target(host, str(meta(route).get("namespace") or ns), svc_name, port)
                if target is None:
                    problems.append(f"{label(route)} routes {hostname} to Service {svc_name}:{port}, which does not exist")
                    continue
                svc, target_port = target
                if not all(vc_pod.labels.get(k) == str(v) for k, v in ((svc.get("spec") or {}).get("selector") or {}).items()):
                    problems.append(f"Service {svc_name} does not select the vCluster pod")
                number = target_port if isinstance(target_port, int) else vc_pod.named_ports.get(str(target_port), (api_port,))[0]
                src = _pod_of(TRAEFIK[0], TRAEFIK[1], ns_labels, what="K3s's Traefik (kube-system)")
                verdict = netpol.evaluate(policies, src, vc_pod, int(number))
                if not verdict.allowed:
                    problems.append(f"the route {label(route)} is blocked: {verdict.reason}")
        # kustomize-controller applies inside/; helm-controller installs releases into the vCluster.
        remote_releases = any(r.remote and r.ns == ns for r in ctx.releases)
        for fns, flabels in FLUX_CONTROLLERS if remote_releases else FLUX_CONTROLLERS[:1]:
            verdict = netpol.evaluate(policies, _pod_of(fns, flabels, ns_labels, what=f"Flux's {flabels['app']}"), vc_pod, api_port)
            if not verdict.allowed:
                problems.append(f"Flux cannot reach the vCluster API: {verdict.reason}")
        tenant = _pod_of(ns, {"vcluster.loft.sh/managed-by": rel.name}, ns_labels, what=f"a tenant pod in {ns}")
        dns = _pod_of(KUBE_DNS[0], KUBE_DNS[1], ns_labels, {"containers": [{"ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"}]}]},
                      "the host's CoreDNS (kube-system)")
        for proto in ("UDP", "TCP"):
            verdict = netpol.evaluate(policies, tenant, dns, 53, proto)
            if not verdict.allowed:
                problems.append(f"tenant pods cannot resolve names (53/{proto}): {verdict.reason}")
        ctx.check(rel.path, f"{rel.label()} reachability", problems)

    for case in function_pods(ctx):
        fn_pod = _pod_of(case.namespace, case.metadata.get("labels") or {}, ns_labels, case.spec, case.what)
        problems = []
        for sns, slabels in KNATIVE_INGRESS:
            verdict = netpol.evaluate(policies, _pod_of(sns, slabels, ns_labels, what=f"Knative's {slabels['app']}"), fn_pod, KNATIVE_QUEUE_PORT)
            if not verdict.allowed:
                problems.append(f"requests cannot reach {case.what}: {verdict.reason}")
        ctx.check(case.path, f"{case.what} reachability", problems)


# --------------------------------------------------------------------------------------


def _resolve_application_namespaces(ctx: Context) -> None:
    """A Flux Kustomization read from a file may get its namespace from the kustomize build
    that contains it: use the built copy."""
    resolved = []
    for ks, objs in ctx.applications:
        if ks.namespace is None:
            built = next((o for o in ctx.effective if o.origin is ks and o.namespace), None) or next(
                (o for o in ctx.effective if o.path == ks.path and o.kind == ks.kind and o.name == ks.name and o.namespace), None)
            ks = built or ks
        resolved.append((ks, objs))
    ctx.applications = resolved


STAGES: list[Callable[[Context], None]] = [
    collect_releases, render_releases, check_versions, check_rbac, check_pods, check_quotas,
    check_reachability, check_dns_documented, check_git_credentials, check_remediation,
    check_virtual_versions,
]


def run(ctx: Context) -> None:
    ctx.platform = load_platform(ctx.tree)
    _resolve_application_namespaces(ctx)
    for stage in STAGES:
        try:
            stage(ctx)
        except Exception as err:  # noqa: BLE001 -- a malformed tree must be a failure, not a traceback
            ctx.check("(day-one checks)", stage.__name__,
                      [f"could not run on this tree: {type(err).__name__}: {err}"])
            if stage in (collect_releases, render_releases):
                return  # every later stage needs the releases
