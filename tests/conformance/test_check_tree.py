"""Tests for check_tree.py: the good tree passes, each bad tree fails for its planted fault.

Run with the venv that scripts/tools.sh creates (it has the real kubectl and helm too):

    .tools/venv/bin/python tests/conformance/test_check_tree.py

The upstream snapshot is found at ../shared/upstream beside the repository, or wherever
HEXABASE_UPSTREAM points.
"""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TESTDATA = HERE / "testdata"
UPSTREAM = Path(os.environ.get("HEXABASE_UPSTREAM", REPO.parent / "shared" / "upstream"))

sys.dont_write_bytecode = True  # leave no __pycache__ in the source tree
sys.path.insert(0, str(HERE))
import check_tree  # noqa: E402  (needs the path above)

# Every bad tree, with (where the failure is reported, what it must say). Each tree has
# exactly one planted fault, so exactly one check may fail.
BAD_TREES = {
    "bad-helmrelease-unknown-field": (
        "tenants/home/vcluster.yaml: [HelmRelease/vcluster]",
        "spec: Additional properties are not allowed ('timeoutt' was unexpected)",
    ),
    "bad-dangling-dependson": (
        "clusters/home/tenants.yaml: [Kustomization/flux-system/tenants]",
        "spec.dependsOn[0] Kustomization flux-system/infrastructure not found in the tree",
    ),
    "bad-vcluster-value": (
        "tenants/home/vcluster.yaml: [HelmRelease/ws-acme-dev/vcluster]",
        "at '/controlPlane/distro': additional properties 'k3s' not allowed",
    ),
    "bad-missing-resource": (
        "clusters/home/tenants.yaml: [Kustomization/flux-system/tenants]",
        "kubectl kustomize ./tenants/home failed: ",
    ),
    "bad-deployment-unknown-field": (
        "tenants/home/deployment.yaml: [Deployment/web]",
        "spec.template.spec.containers[0]: Additional properties are not allowed ('imagePullPolicyy' was unexpected)",
    ),
    "bad-flux-api-version": (
        "tenants/home/sources.yaml: [HelmRepository/loft]",
        "apiVersion source.toolkit.fluxcd.io/v1beta2 is not one current Flux serves",
    ),
    "bad-other-workspace-namespace": (
        "tenants/home/acme/dev/host/flux-tenant.yaml: [RoleBinding/flux]",
        "names namespace ws-acme-prod, which belongs to another workspace",
    ),
    "bad-cross-namespace-ref": (
        "tenants/home/inside.yaml: [Kustomization/ws-acme-dev/inside]",
        "spec.sourceRef points into namespace flux-system: cross-namespace references are locked down",
    ),
}


def run_checker(tree: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        # These trees plant faults in files; the day-one checks (test_day_one.py) need a
        # whole platform (plans, charts, policies) that these small trees do not have.
        [sys.executable, str(HERE / "check_tree.py"), "--tree", str(TESTDATA / tree), "--upstream", str(UPSTREAM),
         "--skip-day-one"],
        capture_output=True, text=True, timeout=300,
    )


class CheckTreeTest(unittest.TestCase):
    """Runs the real checker (real kubectl and helm) on every tree under testdata/."""

    results: dict[str, subprocess.CompletedProcess] = {}

    @classmethod
    def setUpClass(cls) -> None:
        for tool in ("kubectl", "helm"):
            if not os.access(REPO / ".tools" / "bin" / tool, os.X_OK):
                raise AssertionError(f".tools/bin/{tool} is missing: run scripts/tools.sh")
        if not UPSTREAM.is_dir():
            raise AssertionError(f"no upstream snapshot at {UPSTREAM}: set HEXABASE_UPSTREAM")
        trees = ["good", *BAD_TREES]
        # One checker process per tree, side by side: each spends most of its time waiting
        # for kubectl and helm.
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            cls.results = dict(zip(trees, pool.map(run_checker, trees)))

    def test_every_bad_tree_is_listed(self) -> None:
        on_disk = {p.name for p in TESTDATA.iterdir() if p.is_dir() and p.name.startswith("bad-")}
        self.assertEqual(on_disk, set(BAD_TREES))

    def test_good_tree_passes(self) -> None:
        result = self.results["good"]
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertRegex(result.stdout, r"(?m)^conformance: [1-9][0-9]* passed, 0 failed$")

    def test_bad_trees_fail_for_their_planted_fault(self) -> None:
        for tree, (where, reason) in BAD_TREES.items():
            with self.subTest(tree=tree):
                result = self.results[tree]
                output = result.stdout + result.stderr
                self.assertEqual(result.returncode, 1, output)
                self.assertRegex(result.stdout, r"(?m)^conformance: \d+ passed, 1 failed$", output)
                failures = [line for line in result.stdout.splitlines() if not line.startswith("conformance: ")]
                self.assertTrue(
                    any(line.startswith(where + ": ") and reason in line for line in failures),
                    f"expected a failure at {where!r} saying {reason!r}, got:\n{output}",
                )


class SchemaConversionTest(unittest.TestCase):
    """The openAPIV3Schema -> strict JSON Schema conversion, on the cases the CRDs use."""

    def validate(self, openapi: dict, instance: object) -> list[str]:
        import jsonschema

        schema = check_tree.crd_schema_to_json_schema(openapi)
        return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(instance)]

    def test_unknown_fields_are_errors(self) -> None:
        schema = {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}}}}}
        self.assertEqual(self.validate(schema, {"a": {"b": "x"}}), [])
        self.assertEqual(len(self.validate(schema, {"a": {"c": "x"}})), 1)
        self.assertEqual(len(self.validate(schema, {"z": 1})), 1)

    def test_preserve_unknown_fields_and_maps_stay_open(self) -> None:
        schema = {"type": "object", "properties": {
            "values": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        }}
        self.assertEqual(self.validate(schema, {"values": {"any": {"thing": 1}}, "labels": {"k": "v"}}), [])
        self.assertEqual(len(self.validate(schema, {"labels": {"k": 1}})), 1)

    def test_int_or_string_and_nullable(self) -> None:
        schema = {"type": "object", "properties": {
            "port": {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True},
            "bare": {"x-kubernetes-int-or-string": True},
            "note": {"type": "string", "nullable": True},
        }}
        self.assertEqual(self.validate(schema, {"port": 80, "bare": "http", "note": None}), [])
        self.assertTrue(self.validate(schema, {"port": 1.5}))
        self.assertEqual(len(self.validate(schema, {"bare": True})), 1)

    def test_branches_of_anyof_are_not_closed(self) -> None:
        # anyOf branches only add constraints to fields the structural schema declares.
        schema = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                  "anyOf": [{"required": ["a"]}, {"required": ["b"]}]}
        self.assertEqual(self.validate(schema, {"a": "x", "b": "y"}), [])
        self.assertEqual(len(self.validate(schema, {})), 1)


class MetadataTest(unittest.TestCase):
    def problems(self, api_version: str, kind: str, metadata: dict) -> list[str]:
        obj = check_tree.Obj({"apiVersion": api_version, "kind": kind, "metadata": metadata}, "x.yaml")
        return check_tree.metadata_problems(obj)

    def test_names(self) -> None:
        self.assertEqual(self.problems("v1", "ConfigMap", {"name": "a.b-c"}), [])
        self.assertTrue(self.problems("v1", "ConfigMap", {"name": "A"}))
        self.assertTrue(self.problems("v1", "ConfigMap", {}))
        self.assertTrue(self.problems("v1", "Namespace", {"name": "a.b"}))
        self.assertTrue(self.problems("serving.knative.dev/v1", "Service", {"name": "1abc"}))
        self.assertEqual(self.problems("rbac.authorization.k8s.io/v1", "ClusterRole", {"name": "hexabase:workspace-admin"}), [])
        self.assertTrue(self.problems("v1", "ConfigMap", {"name": "a", "namespace": "Bad_NS"}))

    def test_labels(self) -> None:
        self.assertEqual(self.problems("v1", "ConfigMap", {"name": "a", "labels": {"hexabase.ai/org": "acme", "x": ""}}), [])
        self.assertTrue(self.problems("v1", "ConfigMap", {"name": "a", "labels": {"k": "x" * 64}}))
        self.assertTrue(self.problems("v1", "ConfigMap", {"name": "a", "labels": {"k": True}}))
        self.assertTrue(self.problems("v1", "ConfigMap", {"name": "a", "labels": {"bad prefix/k": "v"}}))
        self.assertTrue(self.problems("v1", "ConfigMap", {"name": "a", "labels": {"-k": "v"}}))


class YamlTest(unittest.TestCase):
    def test_duplicate_keys_are_rejected(self) -> None:
        import yaml

        with self.assertRaises(yaml.YAMLError):
            check_tree.load_documents("a: 1\na: 2\n")

    def test_dates_stay_strings(self) -> None:
        self.assertEqual(check_tree.load_documents("d: 2024-01-02\n"), [{"d": "2024-01-02"}])


if __name__ == "__main__":
    # unittest prints no closing line CI reads; add the plain "N passed, M failed" one.
    # Everything on stdout, so the closing line really is the last one.
    program = unittest.main(exit=False, testRunner=unittest.TextTestRunner(stream=sys.stdout, verbosity=2))
    result = program.result
    # A test with several failing subtests is one failed test.
    failing = {getattr(test, "test_case", test).id() for test, _ in result.failures + result.errors}
    failed = len(failing) + len(result.unexpectedSuccesses)
    print(f"checker-tests: {max(0, result.testsRun - failed - len(result.skipped))} passed, {failed} failed")
    sys.exit(0 if result.wasSuccessful() and result.testsRun else 1)
