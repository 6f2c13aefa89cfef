#!/usr/bin/env python3
"""Independent conformance checker for a rendered Hexabase GitOps tree.

It holds every rendered file to the tools that consume it (DESIGN.md section 3), not to
the compiler's own idea of correctness:

  a. every Flux Kustomization's spec.path builds with the real `kubectl kustomize`, and the
     built objects are validated too; sourceRef / dependsOn / chart sourceRef resolve inside
     the tree; the Flux multi-tenancy lockdown holds (serviceAccountName, no cross-namespace
     references outside flux-system)
  b. only the Flux API versions that current Flux serves
  c. custom resources validate strictly (unknown fields are errors) against the upstream
     CRDs' openAPIV3Schema, and every object's metadata is well formed
  d. built-in Kubernetes objects validate against the strict schemas kubernetes-validate
     ships for Kubernetes 1.35
  e. vcluster HelmRelease values pass the real vcluster chart's values.schema.json, checked
     by the real `helm template`
  f. no duplicate object within one kustomize build
  g. no plaintext Secret (DESIGN.md: secrets are committed SOPS-encrypted only)
  h. nothing under tenants/<cluster>/<org>/<ws>/ names another workspace's namespace
     (ws-<org>-<ws>) in a namespace field or a DNS name

Then the day-one checks of day_one/checks.py (skipped with --skip-day-one): the pinned
upstream charts rendered with the real `helm template` and Flux's values, API versions served
by the pinned charts' CRDs, RBAC of every identity that applies objects, the Kyverno policies
and Pod Security against every pod the platform starts, the vCluster quotas against the plan,
and the network paths to the vCluster API, DNS and Functions (docs/day-one-checks.md).

Every failure is collected and printed as `path: [Kind/namespace/name]: reason`; the last
line is `conformance: N passed, M failed`, counting checks (one object's validation, one
build, one object's references, one release's values). Exit status 1 on any failure.

Not checked (no faithful offline equivalent): the CRDs' CEL rules
(x-kubernetes-validations) and `format` keywords, Flux postBuild variable substitution,
HelmRelease valuesFrom in check e (reported as a failure on vcluster releases, whose values
must be inline; the day-one render merges it), and anything only an admission webhook or a
controller decides at run time. Notices of what was not checked go to stderr.

Run it with the Python of the venv that scripts/tools.sh creates.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import gzip
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml
from referencing import Registry, Resource

# Custom resource kinds that are neither built in nor defined by an upstream CRD, but are
# allowed anyway. Every entry needs a reason. Keys are (API group, kind).
ALLOWED_UNKNOWN_KINDS: dict[tuple[str, str], str] = {
    # ("example.com", "Widget"): "why this kind has no upstream schema yet",
    ("operator.knative.dev", "KnativeServing"): (
        "Knative Serving is installed through the Knative operator, whose CRD is not among the "
        "upstream schemas in shared/upstream (only Serving's own CRDs are)"
    ),
    ("traefik.io", "IngressRouteTCP"): (
        "the vCluster API route: K3s ships Traefik, whose CRDs are not among the upstream schemas; "
        "TLS passthrough by SNI has no built-in Ingress form"
    ),
}

# Flux API versions current Flux (v2.9) serves and Hexabase may render. notification's
# Alert and Provider are still v1beta3 upstream; its Receiver is v1.
FLUX_API_VERSIONS = {
    "source.toolkit.fluxcd.io/v1",
    "kustomize.toolkit.fluxcd.io/v1",
    "helm.toolkit.fluxcd.io/v2",
    "notification.toolkit.fluxcd.io/v1beta3",
    "notification.toolkit.fluxcd.io/v1",
}

# The Kubernetes version built-in objects are validated against.
K8S_VERSION = "1.35"

FLUX_SYSTEM = "flux-system"
FLUX_SOURCE_KINDS = {"GitRepository", "OCIRepository", "Bucket", "HelmRepository", "HelmChart", "ExternalArtifact"}

# Kustomize's own config files: not objects, and `kubectl kustomize` is what checks them.
KUSTOMIZATION_FILES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}

# Built-in kinds that are cluster-scoped, so a Flux Kustomization's targetNamespace does not
# apply to them (the same exception kustomize's namespace transformer makes).
CLUSTER_SCOPED_BUILTINS = {
    "Namespace", "Node", "PersistentVolume", "ClusterRole", "ClusterRoleBinding",
    "CustomResourceDefinition", "StorageClass", "PriorityClass", "APIService",
    "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
    "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding", "CSIDriver", "CSINode",
    "RuntimeClass", "IngressClass", "VolumeAttachment", "CertificateSigningRequest",
    "FlowSchema", "PriorityLevelConfiguration", "DeviceClass", "ResourceSlice",
    "ClusterTrustBundle", "IPAddress", "ServiceCIDR", "VolumeAttributesClass",
}

# A build that fails prints all of kustomize's error; keep the report line readable.
MAX_REASON_CHARS = 1500
MAX_SCHEMA_ERRORS_PER_OBJECT = 20
HELM_BATCH_SIZE = 25

SCRIPT_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPT_DIR.parent.parent
WRAPPER_CHART = SCRIPT_DIR / "vcluster-schema-chart"


# --------------------------------------------------------------------------------------
# YAML


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe loader that reads YAML the way Kubernetes tooling does.

    kustomize rejects duplicate keys (PyYAML silently keeps the last one), and
    sigs.k8s.io/yaml keeps unquoted dates as strings (PyYAML makes datetimes of them,
    which no schema's "type: string" accepts).
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable (complex) key: construct_mapping rejects it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_documents(text: str) -> list[Any]:
    """All non-empty documents of a YAML stream."""
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]


# --------------------------------------------------------------------------------------
# Objects and the report


def api_group(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


@dataclass
class Obj:
    """One Kubernetes object and where it was found."""

    body: dict
    path: str  # where a person should look: a file, or a build directory
    from_build: bool = False
    origin: "Obj | None" = None  # for a built object: the file object it was built from

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def group(self) -> str:
        return api_group(self.api_version)

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def meta(self) -> dict:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        return str(self.meta.get("name", ""))

    @property
    def namespace(self) -> str | None:
        ns = self.meta.get("namespace")
        return str(ns) if ns else None

    @property
    def spec(self) -> dict:
        spec = self.body.get("spec")
        return spec if isinstance(spec, dict) else {}

    def label(self) -> str:
        parts = [self.kind or "?"]
        if self.namespace:
            parts.append(self.namespace)
        parts.append(self.name or "?")
        return "/".join(parts)

    def is_flux(self, group_prefix: str, kind: str) -> bool:
        return self.group == f"{group_prefix}.toolkit.fluxcd.io" and self.kind == kind


def without_namespace(body: dict) -> str:
    meta = body.get("metadata")
    if isinstance(meta, dict) and "namespace" in meta:
        body = dict(body, metadata={k: v for k, v in meta.items() if k != "namespace"})
    return canonical(body)


def canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True, default=str)


@dataclass
class Report:
    failures: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # what could not be checked
    passed: int = 0
    failed: int = 0

    def check(self, path: str, label: str, reasons: Iterable[str]) -> bool:
        """Record one check; each reason is one failure line."""
        reasons = [r for r in reasons if r]
        if not reasons:
            self.passed += 1
            return True
        self.failed += 1
        for reason in reasons:
            reason = " ".join(reason.split()) if "\n" in reason else reason
            if len(reason) > MAX_REASON_CHARS:
                reason = reason[:MAX_REASON_CHARS] + " ..."
            self.failures.append(f"{path}: [{label}]: {reason}")
        return False


# --------------------------------------------------------------------------------------
# Metadata (the apiserver checks these for every kind; no schema expresses them)

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(rf"^{_LABEL}$")
DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _dns_subdomain_problem(value: str) -> str | None:
    if len(value) > 253 or not DNS1123_SUBDOMAIN.match(value):
        return "must be a DNS subdomain (lowercase alphanumerics, '-' and '.', at most 253 characters)"
    return None


def _dns_label_problem(value: str) -> str | None:
    if len(value) > 63 or not DNS1123_LABEL.match(value):
        return "must be a DNS label (lowercase alphanumerics and '-', at most 63 characters)"
    return None


def _qualified_key_problem(key: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or _dns_subdomain_problem(prefix)):
        return f"key {key!r}: prefix must be a DNS subdomain"
    if len(name) > 63 or not QUALIFIED_NAME.match(name):
        return f"key {key!r}: name part must be at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric"
    return None


def metadata_problems(obj: Obj) -> list[str]:
    meta = obj.body.get("metadata")
    if not isinstance(meta, dict):
        return ["metadata is missing"]
    problems = []
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        problems.append("metadata.name is missing (generateName cannot be applied by Flux)")
    else:
        if obj.group == "rbac.authorization.k8s.io":
            # RBAC names are path segments: "hexabase:workspace-admin" is valid.
            if name in (".", "..") or "/" in name or "%" in name:
                problems.append(f"metadata.name {name!r} must be a path segment (no '/', '%', not '.' or '..')")
        elif (obj.group, obj.kind) in {("", "Namespace")}:
            if p := _dns_label_problem(name):
                problems.append(f"metadata.name {name!r} {p}")
        elif (obj.group, obj.kind) in {("", "Service"), ("serving.knative.dev", "Service")}:
            # A Knative Service creates a Kubernetes Service of the same name.
            if len(name) > 63 or not DNS1035_LABEL.match(name):
                problems.append(f"metadata.name {name!r} must be a DNS-1035 label (start with a letter, at most 63 characters)")
        elif p := _dns_subdomain_problem(name):
            problems.append(f"metadata.name {name!r} {p}")
        if (obj.group, obj.kind) == ("batch", "CronJob") and len(name) > 52:
            problems.append(f"metadata.name {name!r} is longer than 52 characters (CronJob names get a suffix)")
    ns = meta.get("namespace")
    if ns is not None and (not isinstance(ns, str) or _dns_label_problem(ns)):
        problems.append(f"metadata.namespace {ns!r} must be a DNS label")
    labels = meta.get("labels")
    if isinstance(labels, dict):
        for key, value in labels.items():
            if p := _qualified_key_problem(str(key)):
                problems.append(f"metadata.labels {p}")
            if not isinstance(value, str):
                problems.append(f"metadata.labels[{key!r}] must be a string, not {type(value).__name__}")
            elif len(value) > 63 or not LABEL_VALUE.match(value):
                problems.append(f"metadata.labels[{key!r}] value {value!r} is not a valid label value (at most 63 alphanumerics, '-', '_' or '.')")
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        for key, value in annotations.items():
            if p := _qualified_key_problem(str(key)):
                problems.append(f"metadata.annotations {p}")
            if not isinstance(value, str):
                problems.append(f"metadata.annotations[{key!r}] must be a string, not {type(value).__name__}")
    return problems


# --------------------------------------------------------------------------------------
# Schemas


def kubernetes_schema_dir(version: str) -> Path:
    """The strict schema directory kubernetes-validate bundles for `version` (major.minor)."""
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    candidates = sorted(
        entry.name for entry in root.iterdir()
        if entry.name.startswith(f"v{version}.") and entry.name.endswith("-local-strict")
    )
    if not candidates:
        import kubernetes_validate.version as kv_version

        raise SystemExit(
            f"check_tree: kubernetes-validate {kv_version.__version__} ships no strict schemas "
            f"for Kubernetes {version}"
        )
    return Path(str(root / candidates[-1]))


def _json_path(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def schema_errors(validator: jsonschema.protocols.Validator, body: dict) -> list[str]:
    errors = sorted(validator.iter_errors(body), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    out = []
    for error in errors:
        message = error.message
        if error.context:
            if all(e.validator == "type" for e in error.context):
                # oneOf of types (IntOrString, Quantity): name every accepted type.
                types = sorted({t for e in error.context for t in _as_list(e.validator_value) if t != "null"})
                message = f"{error.instance!r} is not of type {' or '.join(types)}"
            else:
                # oneOf/anyOf: the closest branch says more than "not valid under any schema".
                message = (jsonschema.exceptions.best_match(error.context) or error).message
        line = f"{_json_path(error.absolute_path)}: {message}"
        if line not in out:
            out.append(line)
    if len(out) > MAX_SCHEMA_ERRORS_PER_OBJECT:
        out = out[:MAX_SCHEMA_ERRORS_PER_OBJECT] + [f"... and {len(out) - MAX_SCHEMA_ERRORS_PER_OBJECT} more schema errors"]
    return out


def crd_schema_to_json_schema(node: Any, structural: bool = True) -> Any:
    """Convert a CRD openAPIV3Schema node to a strict JSON Schema (draft 2020-12).

    Strictness follows the apiserver's pruning: an object node accepts only the fields it
    declares unless it says x-kubernetes-preserve-unknown-fields or has additionalProperties.
    Nodes under allOf/anyOf/oneOf/not only add value constraints to fields the structural
    part already declares, so they are left open.
    """
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties"):
            out[key] = {k: crd_schema_to_json_schema(v, structural) for k, v in value.items()}
        elif key in ("additionalProperties", "items") and isinstance(value, dict):
            out[key] = crd_schema_to_json_schema(value, structural)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [crd_schema_to_json_schema(v, False) for v in value]
        elif key == "not":
            out[key] = crd_schema_to_json_schema(value, False)
        elif key in ("description", "nullable", "example", "externalDocs") or key.startswith("x-kubernetes-"):
            continue
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string") and "type" not in out:
        out["type"] = ["integer", "string"]
    if node.get("nullable"):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif isinstance(out.get("type"), list) and "null" not in out["type"]:
            out["type"] = out["type"] + ["null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = out["enum"] + [None]
    is_object = out.get("type") == "object" or (isinstance(out.get("type"), list) and "object" in out["type"])
    if (
        structural
        and is_object
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@dataclass
class CrdVersion:
    group: str
    version: str
    kind: str
    scope: str
    served: bool
    deprecated: bool
    schema: dict  # the raw openAPIV3Schema
    source: str


_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_text(path: Path) -> str:
    return gzip.open(path, "rt").read() if path.name.endswith(".gz") else path.read_text()


def _crd_docs(text: str) -> list[dict]:
    return [d for d in yaml.load_all(text, Loader=_FAST_LOADER)
            if isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition"]


class Schemas:
    """Validators for built-in kinds (kubernetes-validate) and upstream CRDs, built on demand.

    The upstream CRDs are megabytes of YAML (Kyverno's alone take most of a second to
    parse), so only their headers are read up front; a CRD's schemas are parsed the first
    time an object of its kind shows up.
    """

    def __init__(self, upstream: Path, k8s_version: str):
        self.k8s_dir = kubernetes_schema_dir(k8s_version)
        defs = json.loads((self.k8s_dir / "_definitions.json").read_text())
        self.defs_id = defs["$id"]
        self.registry: Registry = Resource.from_contents(defs) @ Registry()
        self._builtin: dict[tuple[str, str, str], jsonschema.protocols.Validator | None] = {}
        self._custom: dict[tuple[str, str, str], jsonschema.protocols.Validator] = {}
        self.crd_root = upstream / "crds"
        self._crd_files: dict[tuple[str, str], Path] = {}
        self._crd_versions: dict[tuple[str, str], dict[str, CrdVersion]] = {}
        self._index_crds()

    def _index_crds(self) -> None:
        if not self.crd_root.is_dir():
            raise SystemExit(f"check_tree: no CRD directory at {self.crd_root}")
        files = sorted(p for p in self.crd_root.rglob("*") if p.name.endswith((".yaml", ".yml", ".yaml.gz")))
        for path in files:
            text = _read_text(path)
            header = None
            if text.count("kind: CustomResourceDefinition") == 1:
                # Generated CRDs put group and names before the (huge) versions list.
                cut = text.find("\n  versions:")
                try:
                    header = yaml.load(text[:cut] if cut >= 0 else text, Loader=_FAST_LOADER)
                except yaml.YAMLError:
                    header = None
            spec = header.get("spec") if isinstance(header, dict) else None
            if isinstance(spec, dict) and spec.get("group") and (spec.get("names") or {}).get("kind"):
                self._crd_files[(spec["group"], spec["names"]["kind"])] = path
                continue
            for doc in _crd_docs(text):  # an unusual layout: parse it all now
                self._add_crd(doc, path)

    def _add_crd(self, doc: dict, path: Path, source: str | None = None) -> None:
        spec = doc["spec"]
        group, kind = spec["group"], spec["names"]["kind"]
        if source is None:
            self._crd_files[(group, kind)] = path
        versions = self._crd_versions.setdefault((group, kind), {})
        for version in spec.get("versions", []):
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            versions[version["name"]] = CrdVersion(
                group=group, version=version["name"], kind=kind,
                scope=spec.get("scope", "Namespaced"), served=bool(version.get("served")),
                deprecated=bool(version.get("deprecated")),
                schema=schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                source=source or str(path.relative_to(self.crd_root)),
            )

    def add_crd_doc(self, doc: dict, source: str) -> None:
        """Make a CRD that a rendered chart installs known, unless an upstream CRD defines the kind."""
        spec = doc.get("spec") or {}
        group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
        if group and kind and (group, kind) not in self._crd_files and (group, kind) not in self._crd_versions:
            self._add_crd(doc, self.crd_root, source)

    def crd(self, group: str, kind: str) -> dict[str, CrdVersion] | None:
        """The versions of an upstream CRD, or None when no upstream CRD defines the kind."""
        key = (group, kind)
        if key not in self._crd_files:
            return self._crd_versions.get(key)
        if key not in self._crd_versions:
            path = self._crd_files[key]
            for doc in _crd_docs(_read_text(path)):
                self._add_crd(doc, path)
        return self._crd_versions.get(key)

    def all_crds(self) -> list[tuple[tuple[str, str], list[str]]]:
        """Every upstream CRD's (group, kind) with its served versions (parses them all)."""
        out = []
        for key in sorted(self._crd_files):
            versions = self.crd(*key) or {}
            out.append((key, sorted(v for v, crd in versions.items() if crd.served)))
        return out

    def is_cluster_scoped(self, group: str, kind: str) -> bool:
        versions = self.crd(group, kind)
        if versions:
            return next(iter(versions.values())).scope == "Cluster"
        return kind in CLUSTER_SCOPED_BUILTINS and (group == "" or group.endswith(".k8s.io"))

    def builtin_validator(self, api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
        """The strict validator of a built-in kind, or None when the kind is not built in."""
        key = (api_group(api_version), api_version.rsplit("/", 1)[-1], kind)
        if key not in self._builtin:
            self._builtin[key] = self._load_builtin(api_version, *key)
        return self._builtin[key]

    def _load_builtin(self, api_version: str, group: str, version: str, kind: str):
        # kubernetes-validate's file naming: rbac.authorization.k8s.io/v1 -> rbac-v1.
        short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
        path = self.k8s_dir / f"{kind.lower()}-{short}.json"
        if not path.is_file():
            return None
        schema = json.loads(path.read_text())
        # The file name drops the group's domain; make sure it is the same group, so that
        # apps.example.com/v1 Deployment is not mistaken for apps/v1 Deployment.
        gvks = schema.get("x-kubernetes-group-version-kind", [])
        if not any(g.get("group", "") == group and g.get("version") == version and g.get("kind") == kind for g in gvks):
            return None
        return jsonschema.Draft202012Validator(schema, registry=self.registry)

    def custom_validator(self, crd: CrdVersion) -> jsonschema.protocols.Validator:
        key = (crd.group, crd.version, crd.kind)
        if key not in self._custom:
            schema = crd_schema_to_json_schema(crd.schema)
            schema.setdefault("properties", {})
            # CRDs leave metadata open ("type: object"); the apiserver validates it as
            # ObjectMeta, so use Kubernetes' own strict ObjectMeta schema.
            schema["properties"]["metadata"] = {
                "$ref": f"{self.defs_id}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
            }
            schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
            self._custom[key] = jsonschema.Draft202012Validator(schema, registry=self.registry)
        return self._custom[key]


# --------------------------------------------------------------------------------------
# Object checks (b, c, d, g)


def object_problems(obj: Obj, schemas: Schemas) -> list[str]:
    body = obj.body
    if not isinstance(body.get("apiVersion"), str) or not body.get("apiVersion"):
        return ["not a Kubernetes object: apiVersion is missing"]
    if not isinstance(body.get("kind"), str) or not body.get("kind"):
        return ["not a Kubernetes object: kind is missing"]

    problems = metadata_problems(obj)

    if obj.group.endswith(".toolkit.fluxcd.io") and obj.api_version not in FLUX_API_VERSIONS:
        problems.append(
            f"apiVersion {obj.api_version} is not one current Flux serves for Hexabase "
            f"(allowed: {', '.join(sorted(FLUX_API_VERSIONS))})"
        )
        return problems

    if (obj.group, obj.kind) == ("", "Secret") and "sops" not in body:
        problems.append("plaintext Secret: secrets are committed SOPS-encrypted only")

    # SOPS keeps its metadata in a top-level `sops` key that Flux strips before applying.
    if "sops" in body:
        body = {k: v for k, v in body.items() if k != "sops"}

    version = obj.api_version.rsplit("/", 1)[-1]
    crd_versions = schemas.crd(obj.group, obj.kind)
    if crd_versions is not None:
        crd = crd_versions.get(version)
        if crd is None:
            problems.append(f"{obj.kind} has no version {version} in its upstream CRD (versions: {', '.join(sorted(crd_versions))})")
        elif not crd.served:
            problems.append(f"{obj.api_version} {obj.kind} is not served by its CRD ({crd.source})")
        elif crd.deprecated:
            problems.append(f"{obj.api_version} {obj.kind} is deprecated upstream ({crd.source}): render a current version")
        else:
            problems += schema_errors(schemas.custom_validator(crd), body)
        return problems

    validator = schemas.builtin_validator(obj.api_version, obj.kind)
    if validator is not None:
        problems += schema_errors(validator, body)
        return problems

    if (obj.group, obj.kind) in ALLOWED_UNKNOWN_KINDS:
        return problems
    problems.append(
        f"unknown kind {obj.kind} in {obj.api_version}: neither a Kubernetes {K8S_VERSION} built-in "
        f"nor defined by an upstream CRD (add it to ALLOWED_UNKNOWN_KINDS with a reason if intended)"
    )
    return problems


# --------------------------------------------------------------------------------------
# Workspace isolation (h)

NAMESPACE_KEYS = {"namespace", "targetNamespace", "storageNamespace", "releaseNamespace"}
# A workspace namespace inside a DNS name: "vcluster.ws-acme-dev:443", "x.ws-acme-dev.svc".
WORKSPACE_NS_IN_DNS = re.compile(r"(?<=\.)(ws-[a-z0-9-]*[a-z0-9])(?=[.:/]|$)")


def workspace_namespace(path: str) -> str | None:
    """ws-<org>-<ws> for a file under tenants/<cluster>/<org>/<ws>/, else None."""
    parts = Path(path).parts
    if len(parts) >= 5 and parts[0] == "tenants":
        return f"ws-{parts[2]}-{parts[3]}"
    return None


def isolation_problems(obj: Obj) -> list[str]:
    """Nothing rendered for one workspace may name another workspace's namespace."""
    own = workspace_namespace(obj.path)
    if own is None:
        return []
    found: set[str] = set()

    def walk(node: Any, key: str | None) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list):
            for item in node:
                walk(item, key)
        elif isinstance(node, str):
            if key in NAMESPACE_KEYS and node.startswith("ws-"):
                found.add(node)
            found.update(WORKSPACE_NS_IN_DNS.findall(node))

    walk(obj.body, None)
    return [f"names namespace {ns}, which belongs to another workspace (this file is {own}'s)"
            for ns in sorted(found - {own})]


# --------------------------------------------------------------------------------------
# Tree walking


def skip_file(rel: Path) -> bool:
    parts = rel.parts
    if parts[0] == "intent":
        return True  # the source of truth, not applied to any cluster
    if any(p.startswith(".") for p in parts):
        return True  # .git, .sourceignore and friends
    if rel.name.lower().startswith("readme"):
        return True
    if len(parts) >= 3 and parts[0] == "clusters" and parts[2] == "flux-system":
        return True  # written by `flux bootstrap`, not by Hexabase
    return False


def kustomize_inputs(kustomization: dict, directory: Path) -> set[Path]:
    """Files a kustomization.yaml reads that are not objects (patches, generator inputs...)."""
    found: list[str] = []

    def paths(entries: Any, key: str | None = "path") -> None:
        for entry in entries or []:
            if isinstance(entry, dict) and key and isinstance(entry.get(key), str):
                found.append(entry[key])
            elif isinstance(entry, str) and "\n" not in entry:
                found.append(entry)

    paths(kustomization.get("patches"))
    paths(kustomization.get("patchesJson6902"))
    paths(kustomization.get("patchesStrategicMerge"), None)
    paths(kustomization.get("replacements"))
    for key in ("configurations", "crds", "transformers", "generators", "validators"):
        paths(kustomization.get(key), None)
    for generator in (kustomization.get("configMapGenerator") or []) + (kustomization.get("secretGenerator") or []):
        if not isinstance(generator, dict):
            continue
        for entry in generator.get("files") or []:
            if isinstance(entry, str):
                found.append(entry.split("=", 1)[-1])
        paths(generator.get("envs"), None)
        if isinstance(generator.get("env"), str):
            found.append(generator["env"])
    for chart in kustomization.get("helmCharts") or []:
        if isinstance(chart, dict) and isinstance(chart.get("valuesFile"), str):
            found.append(chart["valuesFile"])
    openapi = kustomization.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        found.append(openapi["path"])
    return {(directory / p).resolve() for p in found}


def read_tree(tree: Path, report: Report) -> list[Obj]:
    """Every object in the tree's YAML files, minus kustomize config and its inputs."""
    files = sorted(
        p for p in tree.rglob("*")
        if p.is_file() and p.suffix in (".yaml", ".yml") and not skip_file(p.relative_to(tree))
    )
    parsed: list[tuple[Path, list[Any]]] = []
    inputs: set[Path] = set()
    for path in files:
        rel = str(path.relative_to(tree))
        try:
            docs = load_documents(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            report.check(rel, "file", [f"YAML does not parse: {err}"])
            continue
        if path.name in KUSTOMIZATION_FILES:
            for doc in docs:
                if isinstance(doc, dict):
                    inputs |= kustomize_inputs(doc, path.parent)
            continue
        parsed.append((path, docs))

    objects = []
    for path, docs in parsed:
        if path.resolve() in inputs:
            continue  # a patch or generator input; kustomize applies it, the build is checked
        rel = str(path.relative_to(tree))
        for index, doc in enumerate(docs):
            if not isinstance(doc, dict):
                report.check(rel, f"document {index + 1}", ["document is not a mapping"])
                continue
            if api_group(str(doc.get("apiVersion", ""))) == "kustomize.config.k8s.io":
                continue
            annotations = (doc.get("metadata") or {}).get("annotations") or {}
            if str(annotations.get("config.kubernetes.io/local-config", "")).lower() == "true":
                continue  # kustomize drops local-config objects from its output
            objects.append(Obj(doc, rel))
    return objects


# --------------------------------------------------------------------------------------
# Kustomize builds (a, f)


@dataclass
class Build:
    path: str  # relative to the tree root, normalised, "." for the root
    objects: list[dict] = field(default_factory=list)
    error: str | None = None


def normalise_flux_path(raw: Any) -> str | None:
    """spec.path relative to the tree root, or None when it leaves the tree."""
    value = str(raw or "./").strip()
    if value.startswith("/"):
        value = value.lstrip("/")  # Flux reads an absolute path as relative to the source root
    norm = os.path.normpath(value)
    if norm == ".." or norm.startswith("../"):
        return None
    return norm


def run_build(kubectl: str, tree: Path, path: str) -> Build:
    build = Build(path)
    directory = tree / path
    if not directory.is_dir():
        build.error = f"spec.path ./{path} is not a directory in the tree"
        return build
    proc = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True)
    if proc.returncode != 0:
        # kustomize names files by absolute path; show them relative to the tree.
        message = (proc.stderr.strip() or proc.stdout.strip()).replace(f"{tree}/", "")
        build.error = f"kubectl kustomize ./{path} failed: {message}"
        return build
    try:
        build.objects = [d for d in load_documents(proc.stdout) if isinstance(d, dict)]
    except yaml.YAMLError as err:
        build.error = f"kubectl kustomize ./{path} printed YAML that does not parse: {err}"
    return build


def duplicate_problems(objects: Iterable[Obj]) -> list[str]:
    seen: dict[tuple, int] = {}
    for obj in objects:
        key = (obj.group, obj.kind, obj.namespace or "", obj.name)
        seen[key] = seen.get(key, 0) + 1
    return [
        f"{kind} {(ns + '/') if ns else ''}{name} (group {group or 'core'}) appears {count} times"
        for (group, kind, ns, name), count in sorted(seen.items()) if count > 1
    ]


# --------------------------------------------------------------------------------------
# Flux references and multi-tenancy lockdown (a)


def flux_reference_problems(obj: Obj, index: dict[tuple[str, str, str], Obj]) -> list[str]:
    """Problems with a Flux object's sourceRef/dependsOn and the multi-tenancy lockdown."""
    ns = obj.namespace
    problems: list[str] = []
    if ns is None:
        return ["metadata.namespace is not set: Flux objects must name their namespace"]
    locked = ns != FLUX_SYSTEM
    spec = obj.spec

    def resolve(what: str, ref: Any, kinds: set[str], default_kind: str | None = None,
                allow_bootstrap: bool = False) -> None:
        if not isinstance(ref, dict):
            return  # a missing required field is reported by the schema check
        kind = ref.get("kind") or default_kind
        name = ref.get("name")
        ref_ns = ref.get("namespace") or ns
        if locked and ref_ns != ns:
            problems.append(f"{what} points into namespace {ref_ns}: cross-namespace references are locked down outside {FLUX_SYSTEM}")
            return
        if kind not in kinds or not name:
            return  # the schema check reports a bad kind
        if allow_bootstrap and (kind, ref_ns, name) == ("GitRepository", FLUX_SYSTEM, FLUX_SYSTEM):
            return  # created by `flux bootstrap`, never part of the tree
        if (kind, ref_ns, name) not in index:
            problems.append(f"{what} {kind} {ref_ns}/{name} not found in the tree")

    if obj.kind == "Kustomization":
        resolve("spec.sourceRef", spec.get("sourceRef"), {"GitRepository", "OCIRepository", "Bucket", "ExternalArtifact"},
                allow_bootstrap=True)
        for i, dep in enumerate(spec.get("dependsOn") or []):
            resolve(f"spec.dependsOn[{i}]", dep, {"Kustomization"}, default_kind="Kustomization")
    elif obj.kind == "HelmRelease":
        chart_spec = ((spec.get("chart") or {}).get("spec") or {})
        resolve("spec.chart.spec.sourceRef", chart_spec.get("sourceRef"), {"HelmRepository", "GitRepository", "Bucket"})
        resolve("spec.chartRef", spec.get("chartRef"), {"OCIRepository", "HelmChart"})
        for i, dep in enumerate(spec.get("dependsOn") or []):
            resolve(f"spec.dependsOn[{i}]", dep, {"HelmRelease"}, default_kind="HelmRelease")
    elif obj.kind == "Alert":
        resolve("spec.providerRef", spec.get("providerRef"), {"Provider"}, default_kind="Provider")
        for i, src in enumerate(spec.get("eventSources") or []):
            if isinstance(src, dict) and locked and src.get("namespace") not in (None, ns):
                problems.append(f"spec.eventSources[{i}] points into namespace {src['namespace']}: cross-namespace references are locked down outside {FLUX_SYSTEM}")
    elif obj.kind == "Receiver":
        for i, res in enumerate(spec.get("resources") or []):
            if isinstance(res, dict) and locked and res.get("namespace") not in (None, ns):
                problems.append(f"spec.resources[{i}] points into namespace {res['namespace']}: cross-namespace references are locked down outside {FLUX_SYSTEM}")

    if locked and obj.kind in ("Kustomization", "HelmRelease") and not spec.get("serviceAccountName"):
        problems.append(f"spec.serviceAccountName is not set: every {obj.kind} outside {FLUX_SYSTEM} must impersonate a tenant service account")
    return problems


# --------------------------------------------------------------------------------------
# vcluster values through the real helm (e)


def vcluster_chart_version() -> str:
    return str(yaml.safe_load((WRAPPER_CHART / "Chart.yaml").read_text())["version"])


def prepare_vcluster_chart(upstream: Path, workdir: Path) -> Path:
    """A temporary copy of the wrapper chart with the upstream schema and defaults in it."""
    version = vcluster_chart_version()
    source = upstream / f"vcluster-{version}"
    chart = workdir / "vcluster"
    shutil.copytree(WRAPPER_CHART, chart)
    for name in ("values.schema.json", "values.yaml"):
        if not (source / name).is_file():
            raise SystemExit(f"check_tree: {source / name} is missing from the upstream snapshot")
        shutil.copy(source / name, chart / name)
    return chart


def helm_env(workdir: Path) -> dict[str, str]:
    # Keep helm away from the user's config, cache and repositories.
    env = dict(os.environ)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(workdir / "helm-home" / var.lower())
    return env


def helm_values_batch(helm: str, chart: Path, workdir: Path, batch_no: int,
                      releases: list[Obj]) -> dict[int, list[str]]:
    """Validate many releases' values in one helm process.

    An umbrella chart depends on the vcluster chart once per release (alias rN), so helm
    checks each alias's values against the vcluster schema and names the failing alias.
    Returns the reasons per release index; releases that pass are absent.
    """
    umbrella = workdir / f"batch-{batch_no}"
    (umbrella / "charts").mkdir(parents=True)
    shutil.copytree(chart, umbrella / "charts" / "vcluster")
    version = vcluster_chart_version()
    deps = [{"name": "vcluster", "version": version, "alias": f"r{i}"} for i in range(len(releases))]
    (umbrella / "Chart.yaml").write_text(json.dumps(
        {"apiVersion": "v2", "name": "conformance-batch", "version": "0.0.0", "dependencies": deps}
    ))
    values = {f"r{i}": (rel.spec.get("values") or {}) for i, rel in enumerate(releases)}
    values_file = umbrella / "batch-values.yaml"
    values_file.write_text(json.dumps(values))
    proc = subprocess.run(
        [helm, "template", "conformance", str(umbrella), "-f", str(values_file)],
        capture_output=True, text=True, env=helm_env(workdir),
    )
    if proc.returncode == 0:
        return {}
    sections: dict[int, list[str]] = {}
    current: int | None = None
    for line in proc.stderr.splitlines():
        header = re.match(r"^r(\d+):\s*$", line)
        if header:
            current = int(header.group(1))
            sections.setdefault(current, [])
        elif current is not None and line.strip():
            sections[current].append(line.strip().lstrip("- ").strip())
    if not sections or any(i >= len(releases) for i in sections):
        # Not a per-release schema error: check each release alone to place the blame.
        return {i: reasons for i, rel in enumerate(releases)
                if (reasons := helm_values_single(helm, chart, workdir, rel))}
    return {i: [f"vcluster values rejected by helm: {r}" for r in reasons] for i, reasons in sections.items()}


def helm_values_single(helm: str, chart: Path, workdir: Path, release: Obj) -> list[str]:
    values_file = Path(tempfile.mkstemp(dir=workdir, suffix=".yaml")[1])
    values_file.write_text(json.dumps(release.spec.get("values") or {}))
    proc = subprocess.run(
        [helm, "template", release.name or "release", str(chart), "-f", str(values_file)],
        capture_output=True, text=True, env=helm_env(workdir),
    )
    if proc.returncode == 0:
        return []
    return [f"helm template of vcluster failed: {proc.stderr.strip()}"]


def is_vcluster_release(obj: Obj) -> bool:
    chart_spec = (obj.spec.get("chart") or {}).get("spec") or {}
    return obj.is_flux("helm", "HelmRelease") and chart_spec.get("chart") == "vcluster"


# --------------------------------------------------------------------------------------
# Driver


def default_tool(name: str) -> str:
    local = REPO_ROOT / ".tools" / "bin" / name
    return str(local) if os.access(local, os.X_OK) else name


def identity(obj: Obj) -> tuple[str, str, str]:
    return (obj.group, obj.kind, obj.name)


def run(tree: Path, upstream: Path, kubectl: str, helm: str, jobs: int, day_one: bool = True) -> Report:
    report = Report()
    tree = tree.resolve()
    raw = read_tree(tree, report)
    raw_by_identity: dict[tuple[str, str, str], list[Obj]] = {}
    for obj in raw:
        raw_by_identity.setdefault(identity(obj), []).append(obj)

    def find_origin(built: Obj, build_path: str) -> Obj | None:
        """The file object a built object came from. Many workspaces have objects of the
        same name (every workspace's HelmRelease is "vcluster"), so prefer files under the
        build's directory, then the one whose content matches."""
        candidates = [r for r in raw_by_identity.get(identity(built), []) if r.namespace in (None, built.namespace)]
        inside = [r for r in candidates if build_path == "." or r.path.startswith(build_path + "/")]
        candidates = inside or candidates
        same = [r for r in candidates if without_namespace(r.body) == without_namespace(built.body)]
        return (same or candidates or [None])[0]

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool, \
            tempfile.TemporaryDirectory(prefix="check-tree-") as tmp:
        workdir = Path(tmp)

        # Start the builds first: they run in kubectl processes while this thread loads
        # schemas and validates the raw files.
        builds: dict[str, concurrent.futures.Future[Build]] = {}
        flux_kustomizations: list[Obj] = []
        seen_flux_ks: set[str] = set()

        def schedule(obj: Obj) -> None:
            if not obj.is_flux("kustomize", "Kustomization"):
                return
            key = canonical(obj.body)
            if key in seen_flux_ks:
                return
            seen_flux_ks.add(key)
            flux_kustomizations.append(obj)
            path = normalise_flux_path(obj.spec.get("path"))
            if path is not None and path not in builds:
                builds[path] = pool.submit(run_build, kubectl, tree, path)

        for obj in raw:
            schedule(obj)

        schemas = Schemas(upstream, K8S_VERSION)
        validated: set[str] = set()
        reported: set[tuple] = set()

        def validate(obj: Obj) -> None:
            key = (obj.path, canonical(obj.body))
            if key in validated:
                return
            validated.add(key)
            if obj.origin is not None and without_namespace(obj.body) == without_namespace(obj.origin.body):
                # The build only set the namespace of an object its file already had
                # validated: only the namespace is new.
                problems = metadata_problems(obj)
            else:
                problems = object_problems(obj, schemas)
            problems += isolation_problems(obj)
            # A file's fault shows up again in the build that includes it (maybe with a
            # namespace added); report it once, at the file.
            ident = (obj.path, obj.group, obj.kind, obj.name)
            fresh = [p for p in problems if (*ident, p) not in reported]
            reported.update((*ident, p) for p in problems)
            if problems and not fresh:
                return
            report.check(obj.path, obj.label(), fresh)

        for obj in raw:
            validate(obj)

        # Builds may contain Flux Kustomizations of their own (a cluster's tenants build
        # lists per-workspace ones): build those paths too, until nothing new appears.
        done: set[str] = set()
        build_objects: dict[str, list[Obj]] = {}
        build_results: dict[str, Build] = {}
        while len(done) < len(builds):
            for path in sorted(set(builds) - done):
                build = builds[path].result()
                done.add(path)
                build_results[path] = build
                objs = []
                for body in build.objects:
                    obj = Obj(body, f"{path} (kustomize build)", from_build=True)
                    # Point the reader at the file the object came from when it is obvious.
                    if (origin := find_origin(obj, path)) is not None:
                        obj.path = origin.path
                        obj.origin = origin
                    objs.append(obj)
                    schedule(obj)
                build_objects[path] = objs

        # One check per Flux Kustomization: its path builds, the build has no duplicates.
        # A Kustomization found both in a file and in a build is checked once.
        effective: list[Obj] = []
        applications: list[tuple[Obj, list[Obj]]] = []  # (Flux Kustomization, what it applies)
        covered: set[int] = set()  # id() of the file objects that some build contains
        build_checked: set[tuple] = set()
        for ks in flux_kustomizations:
            path = normalise_flux_path(ks.spec.get("path"))
            once = (identity(ks), path, ks.spec.get("targetNamespace"))
            if once in build_checked:
                continue
            build_checked.add(once)
            if path is None:
                report.check(ks.path, ks.label(), [f"spec.path {ks.spec.get('path')!r} leaves the tree"])
                continue
            build = build_results[path]
            if build.error:
                report.check(ks.path, ks.label(), [build.error])
                continue
            target_ns = ks.spec.get("targetNamespace")
            objs = []
            for obj in build_objects[path]:
                if target_ns and not schemas.is_cluster_scoped(obj.group, obj.kind):
                    # kustomize-controller's targetNamespace overrides every namespaced object's.
                    body = dict(obj.body, metadata=dict(obj.meta, namespace=target_ns))
                    obj = Obj(body, obj.path, from_build=True, origin=obj.origin)
                objs.append(obj)
                if obj.origin is not None:
                    covered.add(id(obj.origin))
            report.check(ks.path, ks.label(), [f"kubectl kustomize ./{path}: {p}" for p in duplicate_problems(objs)])
            effective += objs
            applications.append((ks, objs))

        # Objects only in raw files (the cluster entry points) count as Flux applies them.
        # Files under a path whose build failed are left out: without the build their
        # namespaces are unknown, and the failed build is already reported.
        failed_dirs = [path for path, build in build_results.items() if build.error]
        standalone = [
            obj for obj in raw
            if id(obj) not in covered
            and not any(path == "." or obj.path.startswith(path + "/") for path in failed_dirs)
        ]
        by_dir: dict[str, list[Obj]] = {}
        for obj in standalone:
            by_dir.setdefault(str(Path(obj.path).parent), []).append(obj)
        for directory, objs in sorted(by_dir.items()):
            if dups := duplicate_problems(objs):
                report.check(directory, "directory", dups)
        effective += standalone

        for obj in effective:
            if obj.from_build:
                validate(obj)

        # References resolve against everything the tree applies.
        index: dict[tuple[str, str, str], Obj] = {}
        for obj in effective:
            if obj.group.endswith(".toolkit.fluxcd.io") and obj.namespace:
                index.setdefault((obj.kind, obj.namespace, obj.name), obj)
        checked_refs: set[str] = set()
        releases: list[Obj] = []
        for obj in effective:
            if not obj.group.endswith(".toolkit.fluxcd.io") or obj.kind in FLUX_SOURCE_KINDS:
                continue
            if canonical(obj.body) in checked_refs:
                continue
            checked_refs.add(canonical(obj.body))
            report.check(obj.path, obj.label(), flux_reference_problems(obj, index))
            if is_vcluster_release(obj):
                releases.append(obj)

        # vcluster values, in batches across the pool.
        if releases:
            chart = prepare_vcluster_chart(upstream, workdir)
            chart_version = vcluster_chart_version()
            batches = [releases[i:i + HELM_BATCH_SIZE] for i in range(0, len(releases), HELM_BATCH_SIZE)]
            futures = [pool.submit(helm_values_batch, helm, chart, workdir, n, batch) for n, batch in enumerate(batches)]
            for batch, future in zip(batches, futures):
                failures = future.result()
                for i, rel in enumerate(batch):
                    reasons = list(failures.get(i, []))
                    version = str(((rel.spec.get("chart") or {}).get("spec") or {}).get("version", ""))
                    if version != chart_version:
                        # Passing another version's schema would prove nothing about this one.
                        reasons.append(f"spec.chart.spec.version {version!r} is not {chart_version}, "
                                       f"the vcluster version whose schema the upstream snapshot holds")
                    if rel.spec.get("valuesFrom"):
                        reasons.append("spec.valuesFrom cannot be checked against the vcluster schema: render values inline")
                    report.check(rel.path, rel.label(), reasons)

        if day_one:
            run_day_one(tree, upstream, helm, workdir, pool, report, schemas, effective, applications)
    return report


def run_day_one(tree: Path, upstream: Path, helm: str, workdir: Path, pool: concurrent.futures.Executor,
                report: Report, schemas: Schemas, effective: list[Obj],
                applications: list[tuple[Obj, list[Obj]]]) -> None:
    """The day-one checks (day_one/checks.py): what the cluster actually gets."""
    from day_one import checks as day_one_checks
    from day_one.render import Charts

    # Helm's .Capabilities.APIVersions: the CRDs of the upstream snapshot (Flux, Kyverno,
    # Knative; a superset of what a tree installs) and those K3s ships itself.
    api_versions = sorted({f"{group}/{version}" for (group, _kind), versions in schemas.all_crds()
                           for version in versions} | set(day_one_checks.K3S_API_VERSIONS))
    charts = Charts(upstream, helm, helm_env(workdir), day_one_checks.K3S_KUBE_VERSION, api_versions)

    def object_problems_of(obj: Obj) -> list[str]:
        return object_problems(obj, schemas)

    ctx = day_one_checks.Context(
        tree=tree, upstream=upstream, report=report, schemas=schemas, charts=charts, workdir=workdir,
        pool=pool, effective=effective, applications=applications, object_problems=object_problems_of,
        make_obj=lambda body, path: Obj(body, path, from_build=True),
    )
    day_one_checks.run(ctx)
    report.notices += ctx.notices


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", required=True, type=Path, help="the rendered GitOps repository")
    parser.add_argument("--upstream", required=True, type=Path,
                        help="upstream snapshot: crds/ and vcluster-<version>/")
    parser.add_argument("--kubectl", default=default_tool("kubectl"), help="kubectl binary (default: .tools/bin/kubectl)")
    parser.add_argument("--helm", default=default_tool("helm"), help="helm binary (default: .tools/bin/helm)")
    parser.add_argument("--jobs", type=int, default=max(2, 2 * (os.cpu_count() or 1)),
                        help="parallel kubectl/helm processes")
    parser.add_argument("--skip-day-one", action="store_true",
                        help="only the file checks (a-h), not the day-one checks of day_one/checks.py")
    args = parser.parse_args(argv)

    if not args.tree.is_dir():
        parser.error(f"--tree {args.tree} is not a directory")
    if not args.upstream.is_dir():
        parser.error(f"--upstream {args.upstream} is not a directory")
    for tool in (args.kubectl, args.helm):
        if shutil.which(tool) is None:
            parser.error(f"{tool} not found: run scripts/tools.sh, or pass --kubectl/--helm")

    started = time.monotonic()
    report = run(args.tree, args.upstream, args.kubectl, args.helm, args.jobs, day_one=not args.skip_day_one)
    for line in report.notices:
        print(line, file=sys.stderr)
    # Sorted by path (stably, so one check's lines keep their order): the output of two
    # runs over the same tree is the same, and easy to diff.
    for line in sorted(report.failures, key=lambda line: line.split(": [", 1)[0]):
        print(line)
    print(f"conformance: {report.passed} passed, {report.failed} failed", flush=True)
    print(f"(checked {args.tree} in {time.monotonic() - started:.1f}s)", file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
