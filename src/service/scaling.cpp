#include "kiln/service/scaling.hpp"

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "kiln/net/curl_client.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/string.hpp"

namespace kiln::service {

expected<int64_t, std::string> statefulset_replicas(const KubeOptions& options) {
  std::string base = options.api_url;
  if (base.empty()) {
    const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
    const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
    if (!host || !*host) {
      return unexpected(std::string("not in a pod: KUBERNETES_SERVICE_HOST is not set"));
    }
    std::string h = host;
    if (h.find(':') != std::string::npos) {
      h = "[" + h + "]";  // an IPv6 service address
    }
    base = "https://" + h + ":" + (port && *port ? port : "443");
  }
  while (base.ends_with('/')) {
    base.pop_back();
  }
  const std::string& dir = options.service_account_dir;
  auto token = util::read_file(dir + "/token");
  if (!token) {
    return unexpected("cannot read the service account token " + dir + "/token");
  }
  auto ns = util::read_file(dir + "/namespace");
  if (!ns) {
    return unexpected("cannot read the service account namespace " + dir + "/namespace");
  }
  std::string ca;
  if (base.starts_with("https://")) {
    auto read = util::read_file(dir + "/ca.crt");
    if (!read) {
      return unexpected("cannot read the cluster's CA " + dir + "/ca.crt");
    }
    ca = *read;
  }
  net::HttpRequest request;
  request.url = base + "/apis/apps/v1/namespaces/" + std::string(util::trim(*ns)) +
                "/statefulsets/" + options.statefulset;
  request.headers = {"Authorization: Bearer " + std::string(util::trim(*token)),
                     "Accept: application/json"};
  request.ca_pem = ca;
  auto client = net::make_curl_client(net::HttpTimeouts{2000, 5000});
  auto response = client->perform(request);
  if (!response) {
    return unexpected("GET " + request.url + ": " + response.error().message);
  }
  if (response->status != 200) {
    return unexpected("GET " + request.url + ": HTTP " + std::to_string(response->status) + " " +
                      response->body.substr(0, 200));
  }
  auto json = nlohmann::json::parse(response->body, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return unexpected("GET " + request.url + ": not a JSON object");
  }
  auto spec = json.find("spec");
  if (spec == json.end() || !spec->is_object()) {
    return unexpected("GET " + request.url + ": no spec");
  }
  auto replicas = spec->find("replicas");
  if (replicas == spec->end()) {
    return int64_t{1};  // the API's default when the field is omitted
  }
  if (!replicas->is_number_integer()) {
    return unexpected("GET " + request.url + ": spec.replicas is not an integer");
  }
  return replicas->get<int64_t>();
}

std::string scaling_message(int64_t replicas, int64_t workers, bool kubernetes) {
  return std::string("SCALING DETECTED: ") +
         (kubernetes ? "StatefulSet has " : "the membership table has ") +
         std::to_string(replicas) + " replicas but compiler was started with " +
         std::to_string(workers) + " workers";
}

}  // namespace kiln::service
