"""What a Flux HelmRelease installs: the real `helm template` of the pinned upstream chart.

helm-controller (v1.6, Flux 2.9) composes a release this way, and so does this module:
- release name: spec.releaseName, else `<spec.targetNamespace>-<metadata.name>` when a
  target namespace is set, else metadata.name; a name over 53 characters becomes its first
  40 characters, "-", and the first 12 hex digits of its SHA-256
- release namespace: spec.targetNamespace, else the HelmRelease's namespace
- values: each spec.valuesFrom entry in order (ConfigMap or Secret, key `valuesKey`,
  default "values.yaml", optionally placed at `targetPath`), deep-merged, then spec.values
  merged over them (maps merge, everything else is replaced)
- helm hooks run, chart tests do not (spec.test.enable is off by default)
The render uses the capabilities of a K3s host (--kube-version, --api-versions for the
CRDs the platform installs) and --include-crds (install.crds: Create/CreateReplace).
Renders are cached by (chart, version, release, namespace, values digest).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import subprocess
import tarfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def flux_release_name(hr: dict) -> str:
    spec = hr.get("spec") or {}
    meta = hr.get("metadata") or {}
    if spec.get("releaseName"):
        return str(spec["releaseName"])
    name = str(meta.get("name", ""))
    if spec.get("targetNamespace"):
        name = f"{spec['targetNamespace']}-{name}"
    if len(name) > 53:
        name = name[:40] + "-" + hashlib.sha256(name.encode()).hexdigest()[:12]
    return name


def flux_release_namespace(hr: dict) -> str:
    spec = hr.get("spec") or {}
    return str(spec.get("targetNamespace") or (hr.get("metadata") or {}).get("namespace") or "default")


def merge(base: Any, over: Any) -> Any:
    """Helm's (and helm-controller's) values merge: maps merge key by key, the rest is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = merge(base.get(key), value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def _set_path(values: dict, path: str, value: Any) -> None:
    parts = [p for p in path.split(".") if p]
    node = values
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if parts:
        node[parts[-1]] = value


class ValuesError(Exception):
    pass


def flux_values(hr: dict, objects: list[dict]) -> dict:
    """The values helm-controller passes to Helm. `objects` are what the tree applies, for
    valuesFrom; a missing non-optional source raises ValuesError (helm-controller stops)."""
    spec = hr.get("spec") or {}
    ns = str((hr.get("metadata") or {}).get("namespace") or "")
    values: dict = {}
    refs = spec.get("valuesFrom") or []
    if not isinstance(refs, list):
        raise ValuesError("spec.valuesFrom must be a list")
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict):
            raise ValuesError(f"spec.valuesFrom[{i}] must be a map")
        kind, name = ref.get("kind"), ref.get("name")
        key = ref.get("valuesKey") or "values.yaml"
        source = next((o for o in objects if o.get("kind") == kind and o.get("apiVersion") == "v1"
                       and (o.get("metadata") or {}).get("name") == name
                       and (o.get("metadata") or {}).get("namespace") == ns), None)
        data = None
        if source is not None:
            if kind == "Secret":
                if "sops" in source:
                    raise ValuesError(f"spec.valuesFrom[{i}]: Secret {ns}/{name} is SOPS-encrypted; "
                                      "its values cannot be checked offline")
                raw = (source.get("data") or {}).get(key)
                data = base64.b64decode(raw).decode() if raw is not None else (source.get("stringData") or {}).get(key)
            else:
                data = (source.get("data") or {}).get(key)
        if data is None:
            if ref.get("optional"):
                continue
            raise ValuesError(f"spec.valuesFrom[{i}]: {kind} {ns}/{name} key {key!r} is not in the tree")
        if ref.get("targetPath"):
            _set_path(values, str(ref["targetPath"]), data)
        else:
            loaded = yaml.safe_load(data) or {}
            if not isinstance(loaded, dict):
                raise ValuesError(f"spec.valuesFrom[{i}]: {kind} {ns}/{name} key {key!r} is not a YAML map")
            values = merge(values, loaded)
    inline = spec.get("values") or {}
    if not isinstance(inline, dict):
        raise ValuesError("spec.values must be a map")
    return merge(values, inline)


@dataclass
class Render:
    chart: str
    version: str
    release: str
    namespace: str
    objects: list[dict] = field(default_factory=list)
    error: str | None = None
    app_version: str = ""


class Charts:
    """The packaged upstream charts (upstream/charts/<name>-<version>.tgz) and their renders."""

    def __init__(self, upstream: Path, helm: str, env: dict[str, str], kube_version: str, api_versions: list[str]):
        self.dir = upstream / "charts"
        self.helm, self.env = helm, env
        self.kube_version, self.api_versions = kube_version, api_versions
        self._cache: dict[str, Render] = {}
        self._lock = threading.Lock()
        self._inflight: dict[str, threading.Event] = {}

    def available(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for path in sorted(self.dir.glob("*.tgz")) if self.dir.is_dir() else []:
            name, _, version = path.name[:-4].rpartition("-")
            out.setdefault(name, []).append(version)
        return out

    def path(self, chart: str, version: str) -> Path | None:
        path = self.dir / f"{chart}-{version.removeprefix('v')}.tgz"
        return path if path.is_file() else None

    def app_version(self, chart: str, version: str) -> str:
        path = self.path(chart, version)
        if path is None:
            return ""
        with tarfile.open(path) as tar:
            member = next((m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml")), None)
            if member is None:
                return ""
            meta = yaml.safe_load(tar.extractfile(member).read()) or {}  # type: ignore[union-attr]
        return str(meta.get("appVersion", ""))

    def render(self, chart: str, version: str, release: str, namespace: str, values: dict, workdir: Path) -> Render:
        digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
        key = f"{chart}|{version}|{release}|{namespace}|{digest}"
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            event = self._inflight.get(key)
            owner = event is None
            if owner:
                event = self._inflight[key] = threading.Event()
        if not owner:
            event.wait()  # type: ignore[union-attr]
            return self._cache[key]
        result = self._render(chart, version, release, namespace, values, workdir, digest)
        with self._lock:
            self._cache[key] = result
        event.set()  # type: ignore[union-attr]
        return result

    def _render(self, chart: str, version: str, release: str, namespace: str, values: dict,
                workdir: Path, digest: str) -> Render:
        out = Render(chart, version, release, namespace, app_version=self.app_version(chart, version))
        path = self.path(chart, version)
        if path is None:
            out.error = f"{chart} {version} is not in upstream/charts"
            return out
        values_file = workdir / f"values-{chart}-{digest[:16]}.json"
        values_file.write_text(json.dumps(values))
        cmd = [self.helm, "template", release, str(path), "--namespace", namespace, "-f", str(values_file),
               "--include-crds", "--kube-version", self.kube_version]
        for api in self.api_versions:
            cmd += ["--api-versions", api]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env)
        if proc.returncode != 0:
            out.error = f"helm template {chart} {version} failed: {proc.stderr.strip()}"
            return out
        for doc in yaml.load_all(proc.stdout, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            if not isinstance(doc, dict) or not doc.get("kind"):
                continue
            hooks = str(((doc.get("metadata") or {}).get("annotations") or {}).get("helm.sh/hook", ""))
            if "test" in [h.strip() for h in hooks.split(",")]:
                continue  # chart tests: helm-controller runs them only with spec.test.enable
            out.objects.append(doc)
        return out
