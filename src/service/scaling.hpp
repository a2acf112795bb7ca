#pragma once

#include <cstdint>
#include <string>

#include "kiln/util/expected.hpp"

namespace kiln::service {

// Where a replica on Kubernetes asks how many replicas its StatefulSet
// wants (docs/service.md, "Scaling detection").
struct KubeOptions {
  std::string statefulset;  // empty: not on Kubernetes, the membership table decides
  // Empty: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, as in
  // any pod. Tests point it at a fake API server.
  std::string api_url;
  // The pod's service account: token, namespace, ca.crt.
  std::string service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
};

// spec.replicas of the StatefulSet, from GET
// /apis/apps/v1/namespaces/<namespace>/statefulsets/<name> with the
// service account's bearer token. The error says what failed (for a log
// line; a failed check is retried, it never stops a replica).
expected<int64_t, std::string> statefulset_replicas(const KubeOptions& options);

// "SCALING DETECTED: StatefulSet has X replicas but compiler was started
// with Y workers" (Kubernetes), or the same about the membership table.
std::string scaling_message(int64_t replicas, int64_t workers, bool kubernetes);

}  // namespace kiln::service
