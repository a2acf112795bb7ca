"""Shared helpers of the chart tests (tests/helm): finding Helm, rendering the
chart with a set of values, and looking into what it rendered.

Helm is found at $KILN_HELM, else /usr/local/lib/kiln-helm/helm, where
scripts/install-helm.sh puts it; the API's schemas (npm kubernetes-models) at
$KILN_K8S_SCHEMAS, else beside Helm. A missing tool skips the tests, or fails
them when KILN_REQUIRE_SERVERS is set (as .ci/run does), like every test whose
tool is missing (README, "Testing").
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path
from typing import Any

try:
    import yaml  # Debian's python3-yaml (scripts/install-deps.sh)
except ImportError:
    # A python3 first on PATH (pyenv, a venv) may lack it where Debian's has it.
    if os.environ.get("KILN_HELM_TEST_REEXEC") != "1" and os.access("/usr/bin/python3", os.X_OK) \
            and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.environ["KILN_HELM_TEST_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3", *sys.argv])
    sys.exit("tests/helm needs PyYAML: apt-get install python3-yaml")

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "kiln"
NAMESPACE = "compile"
RELEASE = "kiln"
DEFAULT_HELM = "/usr/local/lib/kiln-helm/helm"

# Names the chart gives release "kiln" (the release name contains the chart's,
# so no "kiln-kiln" prefix).
STATEFULSET = "kiln-server"
HEADLESS = "kiln-server-headless"


HELM_PATH = os.environ.get("KILN_HELM") or DEFAULT_HELM


def servers_required() -> bool:
    """Whether KILN_REQUIRE_SERVERS is set (to anything but "" or "0"), as in
    tests/integration/kilntest.py."""
    return os.environ.get("KILN_REQUIRE_SERVERS", "") not in ("", "0")


HELM = HELM_PATH if os.access(HELM_PATH, os.X_OK) else None
# kubernetes-models (npm): the API's schemas, beside Helm (scripts/install-helm.sh).
SCHEMAS = os.environ.get("KILN_K8S_SCHEMAS") or str(Path(HELM_PATH).parent / "kubernetes-models")
VALIDATOR = Path(__file__).resolve().parent / "validate_objects.mjs"


# Helm's cache, config and data directories, private to this run.
HELM_HOME = tempfile.mkdtemp(prefix="kiln-helm-home-")
atexit.register(shutil.rmtree, HELM_HOME, ignore_errors=True)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    env = {**os.environ, "HELM_CACHE_HOME": f"{HELM_HOME}/cache",
           "HELM_CONFIG_HOME": f"{HELM_HOME}/config", "HELM_DATA_HOME": f"{HELM_HOME}/data"}
    return subprocess.run([HELM, *args], capture_output=True, text=True, timeout=60, env=env)


def values_file(values: dict[str, Any], directory: Path) -> Path:
    path = directory / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


class Rendered:
    """The objects one `helm template` produced."""

    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def kinds(self) -> list[str]:
        return sorted(d["kind"] for d in self.docs)

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [d for d in self.all(kind) if name is None or d["metadata"]["name"] == name]
        if len(found) != 1:
            raise AssertionError(f"expected one {kind} {name or ''}, found {len(found)}: "
                                 f"{[d['metadata']['name'] for d in self.all(kind)]}")
        return found[0]

    @property
    def statefulset(self) -> dict[str, Any]:
        return self.one("StatefulSet")

    @property
    def pod(self) -> dict[str, Any]:
        return self.statefulset["spec"]["template"]

    @property
    def container(self) -> dict[str, Any]:
        containers = self.pod["spec"]["containers"]
        assert len(containers) == 1, containers
        return containers[0]

    def env(self) -> dict[str, dict[str, Any]]:
        """The container's environment by name; a name set twice is an error."""
        entries = self.container.get("env", [])
        names = [e["name"] for e in entries]
        duplicates = {n for n in names if names.count(n) > 1}
        if duplicates:
            raise AssertionError(f"environment variables set twice: {sorted(duplicates)}")
        return {e["name"]: e for e in entries}

    def env_value(self, name: str) -> str:
        entry = self.env().get(name)
        if entry is None:
            raise AssertionError(f"{name} is not set; set: {sorted(self.env())}")
        if "value" not in entry:
            raise AssertionError(f"{name} has no plain value: {entry}")
        return entry["value"]

    def secret_ref(self, name: str) -> tuple[str, str]:
        entry = self.env().get(name)
        if entry is None:
            raise AssertionError(f"{name} is not set; set: {sorted(self.env())}")
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref is None:
            raise AssertionError(f"{name} is not from a Secret: {entry}")
        return ref["name"], ref["key"]


class ChartTestCase(unittest.TestCase):
    """A test that renders the chart, in its own temporary directory."""

    maxDiff = 4000

    @classmethod
    def setUpClass(cls) -> None:
        if HELM is None:
            why = f"no helm at {HELM_PATH} (run scripts/install-helm.sh, or set KILN_HELM)"
            if servers_required():
                raise AssertionError(
                    f"{why} (KILN_REQUIRE_SERVERS is set: missing servers and tools fail)")
            raise unittest.SkipTest(why)

    def setUp(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="kiln-helm-"))
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def template_run(self, values: dict[str, Any], release: str = RELEASE) -> subprocess.CompletedProcess[str]:
        return helm("template", release, str(CHART), "--namespace", NAMESPACE,
                    "-f", str(values_file(values, self.dir)))

    def render(self, values: dict[str, Any] | None = None, release: str = RELEASE) -> Rendered:
        run = self.template_run(values or {}, release)
        self.assertEqual(run.returncode, 0, f"helm template failed:\n{run.stderr}")
        docs = [d for d in yaml.safe_load_all(run.stdout) if d]
        for d in docs:
            self.assertEqual(d["metadata"].get("namespace"), NAMESPACE, d["metadata"])
        return Rendered(docs)

    def validate_against_schemas(self, r: Rendered) -> subprocess.CompletedProcess[str]:
        node = shutil.which("node")
        missing = None
        if node is None:
            missing = "node is not installed"
        elif not (Path(SCHEMAS) / "node_modules" / "kubernetes-models" / "package.json").is_file():
            missing = f"no kubernetes-models under {SCHEMAS} (run scripts/install-helm.sh)"
        if missing:
            if servers_required():
                self.fail(f"{missing} (KILN_REQUIRE_SERVERS is set: missing servers and tools fail)")
            self.skipTest(missing)
        return subprocess.run([node, str(VALIDATOR), SCHEMAS], input=json.dumps(r.docs),
                              capture_output=True, text=True, timeout=60)

    def render_fails(self, values: dict[str, Any]) -> str:
        run = self.template_run(values)
        self.assertNotEqual(run.returncode, 0, f"rendered, but should have failed:\n{run.stdout}")
        return run.stderr

    def assert_env_all_strings(self, r: Rendered) -> None:
        # The API rejects a number or boolean as an env value: every plain
        # value must be a YAML string.
        for name, entry in r.env().items():
            if "value" in entry:
                self.assertIsInstance(entry["value"], str, f"{name}: {entry['value']!r}")
