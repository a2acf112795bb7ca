#!/usr/bin/env python3
"""The build cluster in the Helm chart (deploy/helm/kiln, buildCluster.*):
kiln-scheduler, kiln-worker and their KEDA autoscaling, rendered by a real
Helm and checked object by object.

    python3 tests/helm/test_cluster_chart.py [unittest args]

Helm and the schemas are found as for test_chart.py (helmtest.py has the
rules). The environment variables the chart sets are checked against the ones
the binaries read, taken from their sources (the CLI11 `envname(...)` calls in
src/cli/scheduler_main.cpp and worker_main.cpp, the `dist.*` keys of
src/dist/settings.cpp), and the autoscaler's metrics against the names
src/dist/scheduler/scheduler.cpp exports, so a renamed flag or metric fails
here too. KEDA's ScaledObject is a custom resource that kubernetes-models has
no schema for: it alone is left out of the schema check, and checked field by
field instead. What none of this sees: docs/kubernetes.md, "How the chart is
checked".
"""

from __future__ import annotations

import re
import unittest
from typing import Any

# First: it finds a python3 with PyYAML if this one has none.
from helmtest import CHART, NAMESPACE, ROOT, STATEFULSET, ChartTestCase, Rendered, helm, values_file

SCHEDULER = "kiln-scheduler"
WORKER = "kiln-worker"
TOKENS = "kiln-dist-tokens"
SCHEDULER_URL = f"http://{SCHEDULER}.{NAMESPACE}.svc.cluster.local:10600"
KEDA = "keda.sh/v1alpha1"

# The smallest values that deploy the cluster.
ENABLED: dict[str, Any] = {"buildCluster": {"enabled": True, "tokens": {"existingSecret": TOKENS}}}


def with_cluster(**overrides: Any) -> dict[str, Any]:
    """ENABLED with buildCluster's keys `overrides` replaced."""
    return {"buildCluster": {**ENABLED["buildCluster"], **overrides}}


AUTOSCALING: dict[str, Any] = with_cluster(worker={"autoscaling": {
    "enabled": True, "minReplicas": 2, "maxReplicas": 40,
    "prometheus": {"serverAddress": "http://prometheus-server.monitoring.svc:80"}}})
TLS: dict[str, Any] = with_cluster(scheduler={"tls": {"existingSecret": "kiln-scheduler-tls"}})


def envnames(source: str) -> set[str]:
    """The environment variables a daemon's main() reads (CLI11 envname)."""
    text = (ROOT / "src" / "cli" / source).read_text()
    return set(re.findall(r'envname\("([A-Z0-9_]+)"\)', text))


SCHEDULER_READS = envnames("scheduler_main.cpp")
WORKER_READS = envnames("worker_main.cpp")
# kiln's client settings (dist.*), which kiln-server's pipeline reads.
CLIENT_READS = set(re.findall(r'KeyDecl\("dist\.[a-z_]+", "([A-Z0-9_]+)"',
                              (ROOT / "src" / "dist" / "settings.cpp").read_text()))
SCHEDULER_METRICS = set(re.findall(r'gauge\("(kiln_scheduler_[a-z_]+)"',
                                   (ROOT / "src" / "dist" / "scheduler" / "scheduler.cpp").read_text()))


class Workload:
    """A Deployment's pod and its one container."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.pod = obj["spec"]["template"]
        self.spec = self.pod["spec"]
        (self.container,) = self.spec["containers"]

    def env(self) -> dict[str, dict[str, Any]]:
        entries = self.container.get("env", [])
        names = [e["name"] for e in entries]
        duplicates = {n for n in names if names.count(n) > 1}
        assert not duplicates, f"environment variables set twice: {sorted(duplicates)}"
        return {e["name"]: e for e in entries}

    def env_names(self) -> list[str]:
        return [e["name"] for e in self.container.get("env", [])]

    def value(self, name: str) -> str:
        entry = self.env().get(name)
        assert entry is not None, f"{name} is not set; set: {sorted(self.env())}"
        assert isinstance(entry.get("value"), str), f"{name} has no string value: {entry}"
        return entry["value"]

    def file_from_secret(self, name: str) -> tuple[str, str]:
        """The (Secret, key) whose file the variable `name` points at."""
        return mounted_secret_key(self.spec, self.container, self.value(name))


def mounted_secret_key(pod_spec: dict[str, Any], container: dict[str, Any], path: str) -> tuple[str, str]:
    """The (Secret, key) projected at `path` in the container, or an AssertionError."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        secret = volumes[mount["name"]].get("secret")
        assert secret is not None, f"{path} is on volume {mount['name']}, not a Secret"
        for item in secret.get("items", []):
            if item["path"] == path[len(prefix):]:
                return secret["secretName"], item["key"]
        raise AssertionError(f"no key of Secret {secret['secretName']} is at {path}: {secret}")
    raise AssertionError(f"nothing is mounted at {path}: {container.get('volumeMounts')}")


def secret_keys(pod_spec: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (Secret, key) a pod mounts."""
    found = set()
    for v in pod_spec.get("volumes", []):
        if "secret" in v:
            keys = [i["key"] for i in v["secret"].get("items", [])] or ["*"]
            found |= {(v["secret"]["secretName"], k) for k in keys}
    return found


class ClusterChartTest(ChartTestCase):
    def scheduler(self, r: Rendered) -> Workload:
        return Workload(r.one("Deployment", SCHEDULER))

    def worker(self, r: Rendered) -> Workload:
        return Workload(r.one("Deployment", WORKER))

    # --- off by default ---------------------------------------------------

    def test_disabled_renders_no_cluster_object(self) -> None:
        # Everything configured but `enabled`: still nothing.
        configured = {"buildCluster": {**AUTOSCALING["buildCluster"], "enabled": False,
                                       "scheduler": {"tls": {"existingSecret": "x"}}}}
        for label, values in {"defaults": {}, "configured, not enabled": configured}.items():
            with self.subTest(values=label):
                r = self.render(values)
                self.assertEqual(r.kinds(), ["Role", "RoleBinding", "Service", "Service",
                                             "ServiceAccount", "StatefulSet"])
                self.assertEqual([d for d in r.docs if d["apiVersion"] == KEDA], [])
                self.assertEqual({n for n in r.env() if n.startswith("KILN_DIST_")}, set())
                self.assertEqual(secret_keys(r.pod["spec"]), set())

    # --- helm lint and the API's schemas ------------------------------------

    def test_lint(self) -> None:
        for label, values in {"enabled": ENABLED, "autoscaling": AUTOSCALING, "tls": TLS}.items():
            with self.subTest(values=label):
                run = helm("lint", "--strict", str(CHART), "-f", str(values_file(values, self.dir)))
                self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_objects_match_the_api_schemas(self) -> None:
        settings = with_cluster(
            scheduler={"resources": {"requests": {"cpu": "500m"}},
                       "nodeSelector": {"pool": "infra"},
                       "tls": {"existingSecret": "t"}},
            worker={"hostUsers": False, "podSecurityContext": {"fsGroup": 1000},
                    "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]},
                                        "seccompProfile": {"type": "Unconfined"}},
                    "tolerations": [{"key": "build", "operator": "Exists"}],
                    "resources": {"requests": {"cpu": "4"}},
                    "autoscaling": AUTOSCALING["buildCluster"]["worker"]["autoscaling"]})
        for label, values in {"enabled": ENABLED, "autoscaling": AUTOSCALING,
                              "all settings": settings}.items():
            with self.subTest(values=label):
                r = self.render(values)
                # The ScaledObject is KEDA's custom resource, unknown to
                # kubernetes-models: checked by test_autoscaling_* instead.
                skipped = [d for d in r.docs if d["apiVersion"] == KEDA]
                self.assertEqual(len(skipped), 0 if values is ENABLED else 1)
                checked = Rendered([d for d in r.docs if d["apiVersion"] != KEDA])
                self.assertEqual(sorted(checked.kinds()),
                                 sorted(["Deployment", "Deployment", "Role", "RoleBinding", "Service",
                                         "Service", "Service", "ServiceAccount", "StatefulSet"]))
                run = self.validate_against_schemas(checked)
                self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_the_schema_check_sees_the_deployments(self) -> None:
        r = self.render(ENABLED)
        r.one("Deployment", WORKER)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "330"
        run = self.validate_against_schemas(r)
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn(f"Deployment {WORKER}", run.stdout)
        self.assertIn("terminationGracePeriodSeconds must be integer", run.stdout)

    # --- the scheduler -----------------------------------------------------

    def test_scheduler_is_one_pod_replaced_by_recreate(self) -> None:
        d = self.render(ENABLED).one("Deployment", SCHEDULER)
        self.assertEqual(d["apiVersion"], "apps/v1")
        self.assertEqual(d["spec"]["replicas"], 1)
        self.assertEqual(d["spec"]["strategy"], {"type": "Recreate"})
        s = Workload(d)
        self.assertEqual(s.container["command"], ["kiln-scheduler"])
        self.assertEqual(s.container["image"], "kiln:0.1.0")
        self.assertIs(s.spec["automountServiceAccountToken"], False)

    def test_scheduler_environment(self) -> None:
        s = self.scheduler(self.render(ENABLED))
        expected = {
            "KILN_DIST_LISTEN": "0.0.0.0:10600",
            "KILN_DIST_HEARTBEAT_INTERVAL_MS": "2000",
            "KILN_DIST_MISSED_HEARTBEATS": "3",
            "KILN_DIST_MAX_WAIT_MS": "60000",
            "KILN_DIST_IO_THREADS": "1",
            "KILN_DIST_LOG_LEVEL": "info",
        }
        self.assertEqual({k: s.value(k) for k in expected}, expected)
        self.assertEqual(set(s.env()), set(expected) | {"KILN_DIST_CLIENT_TOKEN", "KILN_DIST_WORKER_TOKEN"})
        # The names are those kiln-scheduler reads.
        self.assertLessEqual(set(s.env()), SCHEDULER_READS)
        self.assertEqual(s.file_from_secret("KILN_DIST_CLIENT_TOKEN"), (TOKENS, "client-token"))
        self.assertEqual(s.file_from_secret("KILN_DIST_WORKER_TOKEN"), (TOKENS, "worker-token"))
        self.assertEqual(secret_keys(s.spec), {(TOKENS, "client-token"), (TOKENS, "worker-token")})
        # It listens where the container port and the probes say.
        self.assertEqual(s.container["ports"], [{"name": "http", "containerPort": 10600, "protocol": "TCP"}])
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(s.container[probe]["httpGet"], {"path": "/healthz", "port": "http", "scheme": "HTTP"})

    def test_scheduler_settings_pass_through(self) -> None:
        r = self.render(with_cluster(scheduler={
            "heartbeatIntervalMs": 500, "missedHeartbeats": 5, "maxWaitMs": 30000,
            "ioThreads": 4, "logLevel": "debug",
            "image": {"repository": "registry.example/kiln-scheduler", "tag": "2.0"},
            "extraEnv": [{"name": "KILN_DIST_LOG_FILE", "value": "/dev/stderr"}],
            "resources": {"requests": {"cpu": "250m"}}, "nodeSelector": {"pool": "infra"}}))
        s = self.scheduler(r)
        self.assertEqual({k: s.value(k) for k in ("KILN_DIST_HEARTBEAT_INTERVAL_MS", "KILN_DIST_MISSED_HEARTBEATS",
                                                  "KILN_DIST_MAX_WAIT_MS", "KILN_DIST_IO_THREADS",
                                                  "KILN_DIST_LOG_LEVEL", "KILN_DIST_LOG_FILE")},
                         {"KILN_DIST_HEARTBEAT_INTERVAL_MS": "500", "KILN_DIST_MISSED_HEARTBEATS": "5",
                          "KILN_DIST_MAX_WAIT_MS": "30000", "KILN_DIST_IO_THREADS": "4",
                          "KILN_DIST_LOG_LEVEL": "debug", "KILN_DIST_LOG_FILE": "/dev/stderr"})
        self.assertEqual(s.container["image"], "registry.example/kiln-scheduler:2.0")
        self.assertEqual(s.container["resources"], {"requests": {"cpu": "250m"}})
        self.assertEqual(s.spec["nodeSelector"], {"pool": "infra"})
        # The workers and the service are not touched by the scheduler's image.
        self.assertEqual(self.worker(r).container["image"], "kiln:0.1.0")
        self.assertEqual(r.container["image"], "kiln:0.1.0")

    def test_scheduler_service(self) -> None:
        r = self.render(ENABLED)
        svc = r.one("Service", SCHEDULER)
        s, w = self.scheduler(r), self.worker(r)
        self.assertEqual(svc["spec"]["type"], "ClusterIP")
        self.assertEqual([(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]], [(10600, "http")])
        # It selects the scheduler's pod, and neither the workers nor the service's replicas.
        selector = svc["spec"]["selector"]
        self.assertEqual(r.one("Deployment", SCHEDULER)["spec"]["selector"]["matchLabels"], selector)
        self.assertTrue(selector.items() <= s.pod["metadata"]["labels"].items())
        for other in (w.pod["metadata"]["labels"], r.pod["metadata"]["labels"]):
            self.assertFalse(selector.items() <= other.items(), (selector, other))
        self.assertEqual(svc["metadata"]["annotations"], {
            "prometheus.io/scrape": "true", "prometheus.io/port": "10600", "prometheus.io/path": "/metrics"})
        # The server's Services do not select the cluster's pods.
        for name in (STATEFULSET, f"{STATEFULSET}-headless"):
            sel = r.one("Service", name)["spec"]["selector"]
            for labels in (s.pod["metadata"]["labels"], w.pod["metadata"]["labels"]):
                self.assertFalse(sel.items() <= labels.items(), (name, labels))

    def test_scheduler_service_port_and_annotations(self) -> None:
        r = self.render(with_cluster(scheduler={"service": {
            "port": 443, "annotations": {"team": "build"}, "prometheusAnnotations": False}}))
        svc = r.one("Service", SCHEDULER)
        self.assertEqual([(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]], [(443, "http")])
        self.assertEqual(svc["metadata"]["annotations"], {"team": "build"})
        url = f"http://{SCHEDULER}.{NAMESPACE}.svc.cluster.local:443"
        self.assertEqual(self.worker(r).value("KILN_DIST_SCHEDULER_URL"), url)
        self.assertEqual(r.env_value("KILN_DIST_SCHEDULER_URL"), url)

    # --- the workers ---------------------------------------------------------

    def test_worker_environment(self) -> None:
        r = self.render(ENABLED)
        w = self.worker(r)
        self.assertEqual(w.container["command"], ["kiln-worker"])
        env = w.env()
        self.assertEqual(env["POD_IP"]["valueFrom"], {"fieldRef": {"fieldPath": "status.podIP"}})
        self.assertEqual(env["POD_NAME"]["valueFrom"], {"fieldRef": {"fieldPath": "metadata.name"}})
        # $(VAR) expands only variables defined earlier in the list.
        names = w.env_names()
        self.assertLess(names.index("POD_IP"), names.index("KILN_DIST_PUBLIC_URL"))
        self.assertLess(names.index("POD_NAME"), names.index("KILN_DIST_SERVER_ID"))
        expected = {
            "KILN_DIST_SCHEDULER_URL": SCHEDULER_URL,
            "KILN_DIST_WORKER_LISTEN": "0.0.0.0:10501",
            "KILN_DIST_PUBLIC_URL": "https://$(POD_IP):10501",
            "KILN_DIST_SERVER_ID": "$(POD_NAME)",
            "KILN_DIST_CORES": "4",
            "KILN_DIST_WORK_DIR": "/var/tmp/kiln-worker",
            "KILN_DIST_TOOLCHAIN_CACHE_GIB": "10",
            "KILN_DIST_JOB_TIMEOUT_S": "600",
            "KILN_DIST_JOB_MEMORY_GIB": "4",
            "KILN_DIST_DRAIN_GRACE_S": "300",
            "KILN_DIST_LOG_LEVEL": "info",
        }
        self.assertEqual({k: w.value(k) for k in expected}, expected)
        self.assertEqual(set(env), set(expected) | {"POD_IP", "POD_NAME", "KILN_DIST_WORKER_TOKEN"})
        # The names are those kiln-worker reads (POD_IP, POD_NAME: for $(...) only).
        self.assertLessEqual(set(env) - {"POD_IP", "POD_NAME"}, WORKER_READS)
        # The worker token, and not the client token.
        self.assertEqual(w.file_from_secret("KILN_DIST_WORKER_TOKEN"), (TOKENS, "worker-token"))
        self.assertEqual(secret_keys(w.spec), {(TOKENS, "worker-token")})
        # The public URL's port is the one it listens on and the container's.
        self.assertEqual(w.container["ports"], [{"name": "worker", "containerPort": 10501, "protocol": "TCP"}])
        # The scheduler URL is the scheduler Service's.
        svc = r.one("Service", SCHEDULER)
        self.assertEqual(SCHEDULER_URL, f"http://{svc['metadata']['name']}.{NAMESPACE}.svc.cluster.local:"
                                        f"{svc['spec']['ports'][0]['port']}")
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(w.container[probe]["httpGet"], {"path": "/healthz", "port": "worker", "scheme": "HTTPS"})
        mounts = {m["mountPath"]: m["name"] for m in w.container["volumeMounts"]}
        volumes = {v["name"]: v for v in w.spec["volumes"]}
        self.assertEqual(volumes[mounts["/var/tmp/kiln-worker"]]["emptyDir"], {})

    def test_worker_deployment_defaults(self) -> None:
        d = self.render(ENABLED).one("Deployment", WORKER)
        w = Workload(d)
        self.assertEqual(d["spec"]["replicas"], 2)
        self.assertTrue(d["spec"]["selector"]["matchLabels"].items() <= w.pod["metadata"]["labels"].items())
        grace, drain = w.spec["terminationGracePeriodSeconds"], int(w.value("KILN_DIST_DRAIN_GRACE_S"))
        self.assertEqual((grace, drain), (330, 300))
        self.assertGreater(grace, drain)
        # The documented default: privileged, for bubblewrap.
        self.assertEqual(w.container["securityContext"], {"privileged": True})
        self.assertNotIn("hostUsers", w.spec)
        self.assertIs(w.spec["automountServiceAccountToken"], False)
        # SIGTERM drains: no preStop hook that would delay or replace it.
        self.assertNotIn("lifecycle", w.container)

    def test_worker_settings_pass_through(self) -> None:
        security = {"privileged": False, "capabilities": {"add": ["SYS_ADMIN"]},
                    "seccompProfile": {"type": "Unconfined"}, "appArmorProfile": {"type": "Unconfined"}}
        r = self.render(with_cluster(worker={
            "replicas": 7, "cores": 16, "drainGraceSeconds": 900, "terminationGracePeriodSeconds": 960,
            "toolchainCacheGiB": 30, "jobTimeoutSeconds": 1200, "memoryGiB": 8, "logLevel": "warn",
            "securityContext": security, "hostUsers": False,
            "image": {"repository": "registry.example/kiln-worker"},
            "resources": {"requests": {"cpu": "16", "memory": "32Gi"}},
            "nodeSelector": {"pool": "build"}, "affinity": {"podAntiAffinity": {}},
            "tolerations": [{"key": "build", "operator": "Exists", "effect": "NoSchedule"}],
            "podAnnotations": {"team": "build"},
            "extraEnv": [{"name": "KILN_DIST_LOG_FILE", "value": "/dev/stderr"}]}))
        d = r.one("Deployment", WORKER)
        w = Workload(d)
        self.assertEqual(d["spec"]["replicas"], 7)
        self.assertEqual({k: w.value(k) for k in ("KILN_DIST_CORES", "KILN_DIST_DRAIN_GRACE_S",
                                                  "KILN_DIST_TOOLCHAIN_CACHE_GIB", "KILN_DIST_JOB_TIMEOUT_S",
                                                  "KILN_DIST_JOB_MEMORY_GIB", "KILN_DIST_LOG_LEVEL",
                                                  "KILN_DIST_LOG_FILE")},
                         {"KILN_DIST_CORES": "16", "KILN_DIST_DRAIN_GRACE_S": "900",
                          "KILN_DIST_TOOLCHAIN_CACHE_GIB": "30", "KILN_DIST_JOB_TIMEOUT_S": "1200",
                          "KILN_DIST_JOB_MEMORY_GIB": "8", "KILN_DIST_LOG_LEVEL": "warn",
                          "KILN_DIST_LOG_FILE": "/dev/stderr"})
        self.assertEqual(w.spec["terminationGracePeriodSeconds"], 960)
        self.assertEqual(w.container["securityContext"], security)
        self.assertIs(w.spec["hostUsers"], False)
        self.assertEqual(w.container["image"], "registry.example/kiln-worker:0.1.0")
        self.assertEqual(w.container["resources"], {"requests": {"cpu": "16", "memory": "32Gi"}})
        self.assertEqual(w.spec["nodeSelector"], {"pool": "build"})
        self.assertEqual(w.spec["tolerations"][0]["key"], "build")
        self.assertIn("podAntiAffinity", w.spec["affinity"])
        self.assertEqual(w.pod["metadata"]["annotations"], {"team": "build"})

    def test_every_plain_env_value_is_a_string(self) -> None:
        r = self.render(with_cluster(worker={"cores": 8}, scheduler={"ioThreads": 2}))
        for w in (self.scheduler(r), self.worker(r)):
            for name, entry in w.env().items():
                if "value" in entry:
                    self.assertIsInstance(entry["value"], str, f"{name}: {entry['value']!r}")
        self.assert_env_all_strings(r)

    # --- values that cannot work ---------------------------------------------

    def test_enabled_without_tokens_fails_to_render(self) -> None:
        for tokens in ({}, {"existingSecret": ""}):
            with self.subTest(tokens=tokens):
                err = self.render_fails({"buildCluster": {"enabled": True, "tokens": tokens}})
                self.assertIn("buildCluster.enabled needs buildCluster.tokens.existingSecret", err)
                self.assertIn("client-token and worker-token", err)

    def test_grace_not_above_drain_fails_to_render(self) -> None:
        for grace in (300, 200):
            with self.subTest(grace=grace):
                err = self.render_fails(with_cluster(worker={"drainGraceSeconds": 300,
                                                             "terminationGracePeriodSeconds": grace}))
                self.assertIn(f"buildCluster.worker.terminationGracePeriodSeconds ({grace}) must be more than "
                              "buildCluster.worker.drainGraceSeconds (300)", err)
        # One more second is enough.
        w = self.worker(self.render(with_cluster(worker={"drainGraceSeconds": 300,
                                                         "terminationGracePeriodSeconds": 301})))
        self.assertEqual(w.spec["terminationGracePeriodSeconds"], 301)

    def test_invalid_values_fail_to_render(self) -> None:
        autoscaling = AUTOSCALING["buildCluster"]["worker"]["autoscaling"]
        cases = {
            "autoscaling.enabled needs buildCluster.worker.autoscaling.prometheus.serverAddress":
                with_cluster(worker={"autoscaling": {"enabled": True}}),
            "autoscaling.maxReplicas (2) is less than minReplicas (3)":
                with_cluster(worker={"autoscaling": {**autoscaling, "minReplicas": 3, "maxReplicas": 2}}),
            "buildCluster.worker.cores must be a whole number of at least 1, not 0":
                with_cluster(worker={"cores": 0}),
            "buildCluster.scheduler.logLevel must be debug, info, warn or error, not verbose":
                with_cluster(scheduler={"logLevel": "verbose"}),
            "buildCluster.scheduler.heartbeatIntervalMs must be a whole number of at least 50, not 10":
                with_cluster(scheduler={"heartbeatIntervalMs": 10}),
        }
        for message, values in cases.items():
            with self.subTest(message=message):
                self.assertIn(message, self.render_fails(values))

    # --- autoscaling with KEDA -------------------------------------------------

    def test_autoscaling_renders_a_scaled_object_on_the_workers(self) -> None:
        r = self.render(AUTOSCALING)
        (so,) = [d for d in r.docs if d["kind"] == "ScaledObject"]
        self.assertEqual(so["apiVersion"], KEDA)
        self.assertEqual(so["metadata"]["name"], WORKER)
        self.assertEqual(so["spec"]["scaleTargetRef"], {"apiVersion": "apps/v1", "kind": "Deployment",
                                                        "name": WORKER})
        r.one("Deployment", so["spec"]["scaleTargetRef"]["name"])
        self.assertEqual((so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]), (2, 40))
        (trigger,) = so["spec"]["triggers"]
        self.assertEqual(trigger["type"], "prometheus")
        meta = trigger["metadata"]
        self.assertEqual(meta["serverAddress"], "http://prometheus-server.monitoring.svc:80")
        selector = f'{{namespace="{NAMESPACE}",service="{SCHEDULER}"}}'
        self.assertEqual(meta["query"], f"sum(kiln_scheduler_jobs_running{selector}) + "
                                        f"sum(kiln_scheduler_jobs_waiting{selector})")
        # Metrics the scheduler exports, of the Service Prometheus scrapes.
        self.assertLessEqual({"kiln_scheduler_jobs_running", "kiln_scheduler_jobs_waiting"}, SCHEDULER_METRICS)
        r.one("Service", SCHEDULER)
        # A worker's slots: cores + 1 + cores/8 (src/dist/scheduler/scheduler.cpp), 4 cores.
        self.assertEqual(meta["threshold"], "5")
        # KEDA owns the count: the Deployment does not set one.
        self.assertNotIn("replicas", r.one("Deployment", WORKER)["spec"])

    def test_autoscaling_threshold_and_query(self) -> None:
        base = AUTOSCALING["buildCluster"]["worker"]["autoscaling"]
        cases = {
            "16 cores": ({"cores": 16}, "19"),
            "8 cores": ({"cores": 8}, "10"),
            "given": ({"cores": 16, "autoscaling": {**base, "jobsPerWorker": 12}}, "12"),
        }
        for label, (worker, threshold) in cases.items():
            with self.subTest(label):
                worker = {"autoscaling": base, **worker}
                r = self.render(with_cluster(worker=worker))
                (so,) = r.all("ScaledObject")
                self.assertEqual(so["spec"]["triggers"][0]["metadata"]["threshold"], threshold)
        query = 'sum(kiln_scheduler_jobs_waiting{job="kiln"})'
        r = self.render(with_cluster(worker={"autoscaling": {**base, "prometheus": {
            "serverAddress": "http://p:9090", "query": query}}}))
        self.assertEqual(r.one("ScaledObject")["spec"]["triggers"][0]["metadata"]["query"], query)

    def test_autoscaling_off_keeps_the_replica_count(self) -> None:
        r = self.render(ENABLED)
        self.assertEqual(r.all("ScaledObject"), [])
        self.assertEqual(r.one("Deployment", WORKER)["spec"]["replicas"], 2)

    # --- kiln-server as the cluster's client ------------------------------------

    def test_service_pods_get_the_scheduler_and_the_client_token(self) -> None:
        r = self.render(ENABLED)
        self.assertEqual(r.env_value("KILN_DIST_SCHEDULER_URL"), SCHEDULER_URL)
        self.assertEqual(mounted_secret_key(r.pod["spec"], r.container, r.env_value("KILN_DIST_TOKEN")),
                         (TOKENS, "client-token"))
        # The client token only, never the worker token that signs job tokens.
        self.assertEqual(secret_keys(r.pod["spec"]), {(TOKENS, "client-token")})
        self.assertLessEqual({n for n in r.env() if n.startswith("KILN_DIST_")}, CLIENT_READS)
        self.assertEqual({n for n in r.env() if n.startswith("KILN_DIST_")},
                         {"KILN_DIST_SCHEDULER_URL", "KILN_DIST_TOKEN"})
        # The data volume is still the claim's (persistence on), mounted as before.
        self.assertEqual(r.container["volumeMounts"][0], {"name": "data", "mountPath": "/data"})
        self.assertNotIn("data", {v["name"] for v in r.pod["spec"]["volumes"]})

    def test_service_with_cluster_and_no_persistence_keeps_its_data_volume(self) -> None:
        r = self.render({**ENABLED, "persistence": {"enabled": False}})
        volumes = {v["name"]: v for v in r.pod["spec"]["volumes"]}
        self.assertEqual(volumes["data"], {"name": "data", "emptyDir": {}})
        self.assertEqual(secret_keys(r.pod["spec"]), {(TOKENS, "client-token")})

    def test_an_explicit_scheduler_url_wins(self) -> None:
        url = "https://scheduler.build.example:10600"
        r = self.render(with_cluster(schedulerUrl=url))
        self.assertEqual(r.env_value("KILN_DIST_SCHEDULER_URL"), url)
        self.assertNotIn("KILN_DIST_TOKEN", r.env())
        self.assertEqual(secret_keys(r.pod["spec"]), set())
        # The cluster is deployed all the same.
        self.worker(r)
        self.scheduler(r)

    def test_the_service_s_other_settings_are_unchanged(self) -> None:
        without, with_ = self.render(), self.render(ENABLED)
        env_without, env_with = without.env(), with_.env()
        self.assertEqual({k: v for k, v in env_with.items() if not k.startswith("KILN_DIST_")}, env_without)
        for key in ("replicas", "serviceName", "podManagementPolicy", "selector", "volumeClaimTemplates"):
            self.assertEqual(with_.statefulset["spec"][key], without.statefulset["spec"][key])

    # --- TLS -------------------------------------------------------------------

    def test_tls_scheduler(self) -> None:
        r = self.render(TLS)
        s, w = self.scheduler(r), self.worker(r)
        self.assertEqual(mounted_secret_key(s.spec, s.container, s.value("KILN_DIST_TLS_CERT")),
                         ("kiln-scheduler-tls", "tls.crt"))
        self.assertEqual(mounted_secret_key(s.spec, s.container, s.value("KILN_DIST_TLS_KEY")),
                         ("kiln-scheduler-tls", "tls.key"))
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(s.container[probe]["httpGet"]["scheme"], "HTTPS")
        https = SCHEDULER_URL.replace("http://", "https://")
        self.assertEqual(w.value("KILN_DIST_SCHEDULER_URL"), https)
        self.assertEqual(r.env_value("KILN_DIST_SCHEDULER_URL"), https)
        # Workers and replicas trust ca.crt, and see nothing else of the Secret.
        self.assertEqual(w.file_from_secret("KILN_DIST_SCHEDULER_CA"), ("kiln-scheduler-tls", "ca.crt"))
        self.assertEqual(mounted_secret_key(r.pod["spec"], r.container, r.env_value("KILN_DIST_SCHEDULER_CA")),
                         ("kiln-scheduler-tls", "ca.crt"))
        for spec in (w.spec, r.pod["spec"]):
            self.assertEqual({k for n, k in secret_keys(spec) if n == "kiln-scheduler-tls"}, {"ca.crt"})
        self.assertEqual(r.one("Service", SCHEDULER)["metadata"]["annotations"]["prometheus.io/scheme"], "https")
        self.assertLessEqual(set(s.env()), SCHEDULER_READS)
        self.assertLessEqual(set(w.env()) - {"POD_IP", "POD_NAME"}, WORKER_READS)
        self.assertLessEqual({n for n in r.env() if n.startswith("KILN_DIST_")}, CLIENT_READS)

    def test_tls_without_a_ca_key_uses_the_system_store(self) -> None:
        r = self.render(with_cluster(scheduler={"tls": {"existingSecret": "t", "caKey": ""}}))
        w = self.worker(r)
        self.assertTrue(w.value("KILN_DIST_SCHEDULER_URL").startswith("https://"))
        for env in (w.env(), r.env()):
            self.assertNotIn("KILN_DIST_SCHEDULER_CA", env)
        self.assertEqual(secret_keys(w.spec), {(TOKENS, "worker-token")})

    # --- names -----------------------------------------------------------------

    def test_names_follow_the_release(self) -> None:
        r = self.render(AUTOSCALING, release="prod")
        r.one("Deployment", "prod-kiln-scheduler")
        r.one("Service", "prod-kiln-scheduler")
        w = Workload(r.one("Deployment", "prod-kiln-worker"))
        self.assertEqual(w.value("KILN_DIST_SCHEDULER_URL"),
                         f"http://prod-kiln-scheduler.{NAMESPACE}.svc.cluster.local:10600")
        so = r.one("ScaledObject", "prod-kiln-worker")
        self.assertEqual(so["spec"]["scaleTargetRef"]["name"], "prod-kiln-worker")
        self.assertIn('service="prod-kiln-scheduler"', so["spec"]["triggers"][0]["metadata"]["query"])
        # Two releases' workers are not selected by each other's Deployments.
        other = self.render(ENABLED).one("Deployment", WORKER)
        self.assertNotEqual(other["spec"]["selector"], r.one("Deployment", "prod-kiln-worker")["spec"]["selector"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
