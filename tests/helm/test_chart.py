#!/usr/bin/env python3
"""The Helm chart of the compile service (deploy/helm/kiln), rendered by a real
Helm and checked object by object.

    python3 tests/helm/test_chart.py [unittest args]

Helm is found at $KILN_HELM, else /usr/local/lib/kiln-helm/helm, where
scripts/install-helm.sh puts it (helmtest.py has the rules). Without it the
tests are skipped, or fail when KILN_REQUIRE_SERVERS is set (as .ci/run does).

What this sees: `helm lint`, the objects `helm template` renders for a set
of values (or its failure and message), and those objects checked against the
Kubernetes API's schemas (types, required fields, enumerations) by
validate_objects.mjs with the npm package kubernetes-models, found at
$KILN_K8S_SCHEMAS or beside Helm (the same skip-or-fail rule). What it cannot
see: unknown fields (the schemas allow them), and everything an API server and
a cluster do: admission, RBAC enforcement, volume provisioning, DNS, the
probes answering (docs/kubernetes.md, "How the chart is checked").
"""

from __future__ import annotations

import copy
import unittest
from typing import Any

# First: it finds a python3 with PyYAML if this one has none.
from helmtest import CHART, HEADLESS, NAMESPACE, STATEFULSET, ChartTestCase, helm, values_file

S3_VARIABLES = {"KILN_S3_BUCKET", "KILN_S3_ENDPOINT", "KILN_S3_REGION", "KILN_S3_KEY_PREFIX",
                "KILN_S3_USE_SSL", "KILN_S3_SERVER_SIDE_ENCRYPTION"}
AWS_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

# parallelCompilation with 3 replicas, PostgreSQL from a Secret and the S3
# cache with keys from a Secret.
PARALLEL = {
    "parallelCompilation": {
        "enabled": True,
        "replicas": 3,
        "binaryUpload": {"retries": 4, "initialBackoffMs": 250, "timeoutSeconds": 90},
        "sccache": {
            "enabled": True,
            "s3": {
                "bucket": "kiln-cache",
                "useSSL": True,
                "keyPrefix": "team-a",
                "region": "eu-west-1",
                "endpoint": "minio.storage.svc.cluster.local:9000",
                "serverSideEncryption": "aws:kms",
                "existingSecret": "kiln-s3",
            },
        },
    },
    "database": {"existingSecret": "kiln-db", "secretKey": "connection_url"},
    "server": {"compileJobs": 4},
}

# Everything that passes through to the pod.
POD_SETTINGS: dict[str, Any] = {
    "image": {"repository": "registry.example/kiln", "tag": "1.2.3", "pullPolicy": "Always"},
    "buildCluster": {"schedulerUrl": "http://kiln-scheduler.build:10600"},
    "resources": {"requests": {"cpu": "4", "memory": "8Gi"}},
    "nodeSelector": {"kubernetes.io/arch": "amd64"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "kiln",
                     "effect": "NoSchedule"}],
    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
    "podAnnotations": {"prometheus.io/scrape": "true"},
    # One label of its own, one that would break the selector if it went through.
    "podLabels": {"team": "compilers", "app.kubernetes.io/component": "other"},
    "imagePullSecrets": ["regcred"],
    "server": {"extraEnv": [{"name": "KILN_LOG_LEVEL", "value": "debug"}]},
}


class ChartTest(ChartTestCase):
    # --- helm lint -------------------------------------------------------

    def test_lint(self) -> None:
        for values in ({}, PARALLEL):
            with self.subTest(values=bool(values)):
                run = helm("lint", "--strict", str(CHART), "-f", str(values_file(values, self.dir)))
                self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
                self.assertIn("0 chart(s) failed", run.stdout)

    # --- the API's schemas ------------------------------------------------

    def test_objects_match_the_api_schemas(self) -> None:
        value_sets = {
            "defaults": {},
            "parallel": PARALLEL,
            "web identity, no persistence": {
                "parallelCompilation": {"sccache": {"enabled": True}},
                "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}},
                "persistence": {"enabled": False},
            },
            "pod settings": POD_SETTINGS,
        }
        for label, values in value_sets.items():
            with self.subTest(values=label):
                r = self.render(values)
                run = self.validate_against_schemas(r)
                self.assertEqual(run.returncode, 0, run.stdout + run.stderr)

    def test_the_schema_check_can_fail(self) -> None:
        r = self.render()
        r.statefulset["spec"]["replicas"] = "1"
        r.container["env"][1]["value"] = 8080
        run = self.validate_against_schemas(r)
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("spec/replicas must be integer", run.stdout)
        self.assertIn("env/1/value must be string", run.stdout)

    # --- default values: one replica, SQLite, no S3 ------------------------

    def test_defaults_render_the_objects(self) -> None:
        r = self.render()
        self.assertEqual(r.kinds(), ["Role", "RoleBinding", "Service", "Service", "ServiceAccount",
                                     "StatefulSet"])
        sts = r.statefulset
        self.assertEqual(sts["metadata"]["name"], STATEFULSET)
        self.assertEqual(sts["apiVersion"], "apps/v1")
        self.assertEqual(sts["spec"]["replicas"], 1)
        self.assertEqual(sts["spec"]["podManagementPolicy"], "Parallel")
        self.assertEqual(sts["spec"]["serviceName"], HEADLESS)
        self.assertEqual(r.container["image"], "kiln:0.1.0")
        self.assertEqual(r.container["ports"],
                         [{"name": "http", "containerPort": 8080, "protocol": "TCP"}])

    def test_defaults_environment(self) -> None:
        r = self.render()
        self.assert_env_all_strings(r)
        env = r.env()
        self.assertEqual(env["KILN_SERVER_POD_NAME"]["valueFrom"],
                         {"fieldRef": {"fieldPath": "metadata.name"}})
        # $(VAR) expands only variables defined earlier in the list.
        names = list(env)
        self.assertLess(names.index("KILN_SERVER_POD_NAME"), names.index("KILN_SERVER_PUBLIC_URL"))
        expected = {
            "KILN_SERVER_LISTEN": "0.0.0.0:8080",
            "KILN_SERVER_WORKER_ID": "auto",
            "KILN_SERVER_WORKERS": "1",
            "KILN_SERVER_STATEFULSET": STATEFULSET,
            "KILN_SERVER_LEADER_URL":
                f"http://{STATEFULSET}-0.{HEADLESS}.{NAMESPACE}.svc.cluster.local:8080",
            "KILN_SERVER_PUBLIC_URL":
                f"http://$(KILN_SERVER_POD_NAME).{HEADLESS}.{NAMESPACE}.svc.cluster.local:8080",
            "KILN_SERVER_DATA_DIR": "/data",
            "KILN_SERVER_DATABASE_URL": "sqlite:///data/kiln-server.db",
            "KILN_SERVER_COMPILE_JOBS": "1",
            "KILN_SERVER_UPLOAD_RETRIES": "10",
            "KILN_SERVER_UPLOAD_BACKOFF_MS": "1000",
            "KILN_SERVER_UPLOAD_TIMEOUT_S": "600",
        }
        self.assertEqual({k: r.env_value(k) for k in expected}, expected)
        # No S3 cache, no keys, no build cluster unless asked for.
        self.assertEqual(set(env) & (S3_VARIABLES | AWS_KEYS | {"KILN_DIST_SCHEDULER_URL"}), set())
        self.assertEqual(set(env), set(expected) | {"KILN_SERVER_POD_NAME"})

    def test_probes_get_healthz_on_the_http_port(self) -> None:
        c = self.render().container
        for probe in ("readinessProbe", "livenessProbe"):
            with self.subTest(probe=probe):
                self.assertEqual(c[probe]["httpGet"], {"path": "/healthz", "port": "http"})
                self.assertGreater(c[probe]["periodSeconds"], 0)

    def test_services(self) -> None:
        r = self.render()
        pod_labels = r.pod["metadata"]["labels"]
        selector = r.statefulset["spec"]["selector"]["matchLabels"]
        self.assertTrue(selector.items() <= pod_labels.items(), (selector, pod_labels))

        headless = r.one("Service", HEADLESS)
        self.assertEqual(headless["spec"].get("clusterIP"), "None")
        self.assertIs(headless["spec"].get("publishNotReadyAddresses"), True)
        self.assertEqual(headless["spec"]["selector"], selector)
        self.assertEqual([(p["port"], p["targetPort"]) for p in headless["spec"]["ports"]],
                         [(8080, "http")])

        api = r.one("Service", STATEFULSET)
        self.assertEqual(api["spec"]["type"], "ClusterIP")
        self.assertNotIn("clusterIP", api["spec"])
        self.assertEqual(api["spec"]["selector"], selector)
        self.assertEqual([(p["port"], p["targetPort"]) for p in api["spec"]["ports"]],
                         [(8080, "http")])
        # A second release's selector differs: neither selects the other's pods.
        other = self.render(release="other").statefulset
        self.assertNotEqual(other["spec"]["selector"], r.statefulset["spec"]["selector"])

    def test_rbac_allows_get_on_its_own_statefulset_only(self) -> None:
        r = self.render()
        sa = r.one("ServiceAccount")
        self.assertEqual(r.pod["spec"]["serviceAccountName"], sa["metadata"]["name"])
        self.assertIs(r.pod["spec"]["automountServiceAccountToken"], True)
        role = r.one("Role")
        self.assertEqual(role["rules"], [{
            "apiGroups": ["apps"],
            "resources": ["statefulsets"],
            "resourceNames": [STATEFULSET],
            "verbs": ["get"],
        }])
        binding = r.one("RoleBinding")
        self.assertEqual(binding["roleRef"], {"apiGroup": "rbac.authorization.k8s.io",
                                              "kind": "Role", "name": role["metadata"]["name"]})
        self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount",
                                                "name": sa["metadata"]["name"],
                                                "namespace": NAMESPACE}])

    def test_names_follow_the_release(self) -> None:
        r = self.render(release="prod")
        sts = r.statefulset
        self.assertEqual(sts["metadata"]["name"], "prod-kiln-server")
        self.assertEqual(sts["spec"]["serviceName"], "prod-kiln-server-headless")
        self.assertEqual(r.env_value("KILN_SERVER_STATEFULSET"), "prod-kiln-server")
        self.assertEqual(r.env_value("KILN_SERVER_LEADER_URL"),
                         "http://prod-kiln-server-0.prod-kiln-server-headless.compile.svc.cluster.local:8080")
        self.assertEqual(r.one("Role")["rules"][0]["resourceNames"], ["prod-kiln-server"])
        r.one("Service", "prod-kiln-server-headless")

    # --- persistence ------------------------------------------------------

    def test_persistence_on_claims_a_volume_per_replica(self) -> None:
        r = self.render({"persistence": {"size": "50Gi", "storageClass": "fast"}})
        sts = r.statefulset
        (claim,) = sts["spec"]["volumeClaimTemplates"]
        self.assertEqual(claim["metadata"]["name"], "data")
        self.assertEqual(claim["spec"]["resources"]["requests"]["storage"], "50Gi")
        self.assertEqual(claim["spec"]["storageClassName"], "fast")
        self.assertEqual(claim["spec"]["accessModes"], ["ReadWriteOnce"])
        self.assertNotIn("volumes", r.pod["spec"])
        self.assertEqual(r.container["volumeMounts"], [{"name": "data", "mountPath": "/data"}])

    def test_persistence_off_uses_an_empty_dir(self) -> None:
        r = self.render({"persistence": {"enabled": False}})
        self.assertNotIn("volumeClaimTemplates", r.statefulset["spec"])
        self.assertEqual(r.pod["spec"]["volumes"], [{"name": "data", "emptyDir": {}}])
        self.assertEqual(r.container["volumeMounts"], [{"name": "data", "mountPath": "/data"}])
        self.assertEqual(r.env_value("KILN_SERVER_DATA_DIR"), "/data")

    # --- parallel compilation ----------------------------------------------

    def test_parallel_with_database_and_s3_secrets(self) -> None:
        r = self.render(PARALLEL)
        self.assert_env_all_strings(r)
        self.assertEqual(r.statefulset["spec"]["replicas"], 3)
        self.assertEqual(r.env_value("KILN_SERVER_WORKERS"), "3")
        self.assertEqual(r.env_value("KILN_SERVER_WORKER_ID"), "auto")
        self.assertEqual(r.env_value("KILN_SERVER_LEADER_URL"),
                         f"http://{STATEFULSET}-0.{HEADLESS}.{NAMESPACE}.svc.cluster.local:8080")
        self.assertEqual(r.secret_ref("KILN_SERVER_DATABASE_URL"), ("kiln-db", "connection_url"))
        self.assertEqual(r.env_value("KILN_SERVER_COMPILE_JOBS"), "4")
        self.assertEqual(r.env_value("KILN_SERVER_UPLOAD_RETRIES"), "4")
        self.assertEqual(r.env_value("KILN_SERVER_UPLOAD_BACKOFF_MS"), "250")
        self.assertEqual(r.env_value("KILN_SERVER_UPLOAD_TIMEOUT_S"), "90")
        self.assertEqual({k: r.env_value(k) for k in S3_VARIABLES}, {
            "KILN_S3_BUCKET": "kiln-cache",
            "KILN_S3_ENDPOINT": "minio.storage.svc.cluster.local:9000",
            "KILN_S3_REGION": "eu-west-1",
            "KILN_S3_KEY_PREFIX": "team-a",
            "KILN_S3_USE_SSL": "true",
            "KILN_S3_SERVER_SIDE_ENCRYPTION": "aws:kms",
        })
        self.assertEqual(r.secret_ref("AWS_ACCESS_KEY_ID"), ("kiln-s3", "access_key_id"))
        self.assertEqual(r.secret_ref("AWS_SECRET_ACCESS_KEY"), ("kiln-s3", "secret_access_key"))

    def test_sccache_defaults_are_feldera_s(self) -> None:
        r = self.render({"parallelCompilation": {"sccache": {"enabled": True}}})
        self.assertEqual({k: r.env_value(k) for k in S3_VARIABLES if k in r.env()}, {
            "KILN_S3_BUCKET": "sccache-bucket",
            "KILN_S3_REGION": "us-east-1",
            "KILN_S3_KEY_PREFIX": "sccache",
            "KILN_S3_USE_SSL": "false",
        })
        # Unset endpoint: AWS S3; serverSideEncryption false: not sent.
        self.assertNotIn("KILN_S3_ENDPOINT", r.env())
        self.assertNotIn("KILN_S3_SERVER_SIDE_ENCRYPTION", r.env())

    def test_sccache_with_web_identity(self) -> None:
        role = "arn:aws:iam::111122223333:role/kiln-sccache"
        r = self.render({
            "parallelCompilation": {"sccache": {"enabled": True, "s3": {"bucket": "b"}}},
            "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": role}},
        })
        self.assertEqual(r.env_value("KILN_S3_BUCKET"), "b")
        # No keys: EKS injects AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE
        # into pods of an annotated service account.
        self.assertEqual(set(r.env()) & (AWS_KEYS | {"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"}),
                         set())
        sa = r.one("ServiceAccount")
        self.assertEqual(sa["metadata"]["annotations"], {"eks.amazonaws.com/role-arn": role})
        self.assertEqual(r.pod["spec"]["serviceAccountName"], sa["metadata"]["name"])

    def test_sccache_disabled_sets_no_s3_variables_even_when_configured(self) -> None:
        values = copy.deepcopy(PARALLEL)
        values["parallelCompilation"]["sccache"]["enabled"] = False
        r = self.render(values)
        self.assertEqual(set(r.env()) & (S3_VARIABLES | AWS_KEYS), set())

    def test_parallel_disabled_runs_one_replica_whatever_replicas_says(self) -> None:
        r = self.render({"parallelCompilation": {"enabled": False, "replicas": 5}})
        self.assertEqual(r.statefulset["spec"]["replicas"], 1)
        self.assertEqual(r.env_value("KILN_SERVER_WORKERS"), "1")
        self.assertEqual(r.env_value("KILN_SERVER_DATABASE_URL"), "sqlite:///data/kiln-server.db")

    def test_one_replica_with_a_database_secret_uses_it(self) -> None:
        r = self.render({"database": {"existingSecret": "db"}})
        self.assertEqual(r.secret_ref("KILN_SERVER_DATABASE_URL"), ("db", "url"))

    def test_replicas_without_a_database_fail_to_render(self) -> None:
        err = self.render_fails({"parallelCompilation": {"enabled": True, "replicas": 2}})
        self.assertIn("2 replicas need a shared database", err)
        self.assertIn("database.existingSecret", err)

    def test_invalid_values_fail_to_render(self) -> None:
        cases = {
            "parallelCompilation.replicas must be a whole number of at least 1, not 0":
                {"parallelCompilation": {"enabled": True, "replicas": 0}},
            "parallelCompilation.replicas must be a whole number of at least 1, not 2.5":
                {"parallelCompilation": {"enabled": True, "replicas": 2.5},
                 "database": {"existingSecret": "db"}},
            "server.compileJobs must be a whole number of at least 1, not many":
                {"server": {"compileJobs": "many"}},
            "serverSideEncryption must be false, true, AES256 or aws:kms, not yes":
                {"parallelCompilation": {"sccache": {"enabled": True,
                                                     "s3": {"serverSideEncryption": "yes"}}}},
            "useSSL must be true or false, not https":
                {"parallelCompilation": {"sccache": {"enabled": True, "s3": {"useSSL": "https"}}}},
        }
        for message, values in cases.items():
            with self.subTest(message=message):
                self.assertIn(message, self.render_fails(values))

    # --- the rest of the pod ----------------------------------------------

    def test_scheduler_url_and_pod_settings_pass_through(self) -> None:
        r = self.render(POD_SETTINGS)
        self.assertEqual(r.env_value("KILN_DIST_SCHEDULER_URL"), "http://kiln-scheduler.build:10600")
        self.assertEqual(r.env_value("KILN_LOG_LEVEL"), "debug")
        c, spec = r.container, r.pod["spec"]
        self.assertEqual(c["image"], "registry.example/kiln:1.2.3")
        self.assertEqual(c["imagePullPolicy"], "Always")
        self.assertEqual(c["resources"], {"requests": {"cpu": "4", "memory": "8Gi"}})
        self.assertEqual(spec["nodeSelector"], {"kubernetes.io/arch": "amd64"})
        self.assertEqual(spec["tolerations"][0]["value"], "kiln")
        self.assertIn("podAntiAffinity", spec["affinity"])
        self.assertEqual(spec["imagePullSecrets"], [{"name": "regcred"}])
        self.assertEqual(r.pod["metadata"]["annotations"], {"prometheus.io/scrape": "true"})
        labels = r.pod["metadata"]["labels"]
        self.assertEqual(labels["team"], "compilers")
        self.assertEqual(labels["app.kubernetes.io/component"], "server")
        self.assertTrue(r.statefulset["spec"]["selector"]["matchLabels"].items() <= labels.items())

    def test_existing_service_account_without_rbac(self) -> None:
        r = self.render({"serviceAccount": {"create": False, "name": "ops"}, "rbac": {"create": False}})
        self.assertEqual(r.kinds(), ["Service", "Service", "StatefulSet"])
        self.assertEqual(r.pod["spec"]["serviceAccountName"], "ops")

    def test_existing_service_account_with_rbac_binds_it(self) -> None:
        r = self.render({"serviceAccount": {"create": False, "name": "ops"}})
        self.assertEqual(r.one("RoleBinding")["subjects"][0]["name"], "ops")


if __name__ == "__main__":
    unittest.main(verbosity=2)
