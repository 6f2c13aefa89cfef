"""Policy before commit: the compiler refuses exactly what the plan's rendered Kyverno
policies deny.

`compiler/tests/policy_before_commit.rs` writes testdata/policy-before-commit.json: CronJob
containers (image, CPU, memory) in workspace acme/dev of gitops-repo-example (plan
shared-small), with the plan's project limit range and with none, and the intent fields the
compiler refused for each. Here every case becomes the Pod the CronJob makes (the project
template's mapping: `cpu` is the CPU request, `memory` the memory request and limit), the
rendered LimitRange fills it in as Kubernetes' LimitRanger does (for the cases with one),
and the rendered policies of gitops-repo-example/infrastructure/policies/shared-small are
evaluated on it with the day-one checker's CEL evaluator (no Kyverno CLI is needed). The
registry policy must deny exactly the cases refused at `image`, and the requests policy
exactly those refused at `resources.*`.

    .tools/venv/bin/python tests/conformance/test_policy_before_commit.py
"""

from __future__ import annotations

import json
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
EXAMPLE = REPO / "gitops-repo-example"

sys.dont_write_bytecode = True
sys.path.insert(0, str(HERE))
import yaml  # noqa: E402

from day_one import celpolicy, checks  # noqa: E402

TABLE = json.loads((HERE / "testdata" / "policy-before-commit.json").read_text())
POLICIES = EXAMPLE / "infrastructure" / "policies" / TABLE["plan"]
NS_LABELS = {"hexabase.ai/plan": TABLE["plan"], "kubernetes.io/metadata.name": "ws-acme-dev"}


def limit_ranges() -> list[dict]:
    """The LimitRange rendered into project web of acme/dev (every project of the plan gets
    the plan's defaults)."""
    path = next(EXAMPLE.glob("tenants/*/acme/dev/inside/projects/web.yaml"))
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    found = [d for d in docs if d.get("kind") == "LimitRange"]
    assert found, f"no LimitRange in {path}"
    return found


def pod(case: dict, with_limit_range: bool) -> dict:
    container: dict = {"name": "job", "image": case["image"]}
    requests, limits = {}, {}
    if case["cpu"] is not None:
        requests["cpu"] = case["cpu"]
    if case["memory"] is not None:
        requests["memory"] = case["memory"]
        limits["memory"] = case["memory"]
    if requests or limits:
        container["resources"] = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    spec = {"containers": [container]}
    return checks.apply_limit_range(spec, limit_ranges()) if with_limit_range else spec


def denied_by(name: str, spec: dict) -> bool:
    policy = yaml.safe_load((POLICIES / f"{name}.yaml").read_text())
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ws-acme-dev"}, "spec": spec}
    return bool(celpolicy.denials(policy, celpolicy.Admission(body, "", "v1", "pods", NS_LABELS)))


class PolicyBeforeCommitTest(unittest.TestCase):
    def check(self, key: str, with_limit_range: bool) -> None:
        cases = TABLE[key]
        self.assertTrue(cases)
        for case in cases:
            with self.subTest(key=key, case=case["name"], image=case["image"], cpu=case["cpu"], memory=case["memory"]):
                spec = pod(case, with_limit_range)
                refused = case["refused"]
                self.assertEqual(denied_by("restrict-image-registries", spec), "image" in refused)
                self.assertEqual(denied_by("require-requests-limits", spec),
                                 any(f.startswith("resources.") for f in refused))

    def test_with_the_plans_limit_range(self) -> None:
        self.check("withLimitRange", True)

    def test_without_a_limit_range(self) -> None:
        self.check("withoutLimitRange", False)

    def test_images_without_a_registry_are_read_as_docker_hub(self) -> None:
        admitted = {c["image"] for c in TABLE["withLimitRange"] if "image" not in c["refused"]}
        self.assertIn("nginx", admitted)  # docker.io/library/ is allowed
        self.assertNotIn("acme/app:2", admitted)  # docker.io/acme/ is not
        self.assertNotIn("ghcr.io.evil.example.com/x", admitted)


if __name__ == "__main__":
    unittest.main()
