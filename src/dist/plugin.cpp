// libkiln-dist.so: the cluster's client behind dist_plugin_abi.h.
#include <nlohmann/json.hpp>

#include "kiln/dist/client.hpp"
#include "kiln/dist/dist_plugin_abi.h"
#include "kiln/dist/toolchain.hpp"
#include "kiln/net/curl_client.hpp"
#include "kiln/util/log.hpp"

namespace {

using nlohmann::json;
using namespace kiln;

std::string counters_json(const dist::DistCounters& c) {
  json retries = json::object();
  for (const auto& [reason, n] : c.retries) {
    retries[reason] = n;
  }
  return json{{"jobs", c.jobs},
              {"succeeded", c.succeeded},
              {"retries", retries},
              {"bytes_sent", c.bytes_sent},
              {"bytes_received", c.bytes_received}}
      .dump();
}

int run(const kiln_dist_request* request, kiln_dist_result_fn on_result, void* ctx) {
  if (!request || request->abi != KILN_DIST_PLUGIN_ABI || !request->settings_json ||
      !request->compiler_path || !request->compiler_identity || !request->cache_dir ||
      !request->job) {
    on_result(ctx, nullptr, 0, "{}", "bad request to libkiln-dist.so");
    return 101;
  }
  json settings = json::parse(request->settings_json, nullptr, false);
  auto job = dist::decode_job(std::string_view(request->job, request->job_size));
  if (settings.is_discarded() || !settings.is_object() || !job) {
    on_result(ctx, nullptr, 0, "{}", job ? "bad settings" : job.error().c_str());
    return 101;
  }
  // The id only: the archive is read when a worker asks for it, which after
  // the first jobs is rare.
  auto toolchain = dist::cached_toolchain_ref(request->compiler_path, request->compiler_identity,
                                              request->cache_dir);
  if (!toolchain) {
    on_result(ctx, nullptr, 0, "{}", toolchain.error().c_str());
    return 100;
  }
  job->toolchain = toolchain->id;
  dist::DistClientOptions o;
  o.scheduler_url = settings.value("scheduler_url", "");
  o.token = settings.value("token", "");
  o.scheduler_ca_pem = settings.value("scheduler_ca_pem", "");
  o.client_id = settings.value("client_id", "kiln");
  o.retry_limit = settings.value("retry_limit", 3);
  o.scheduler_retry_ms = settings.value("scheduler_retry_ms", 10000);
  // Into kiln's debug log (log_file), every line with the client's id, and
  // the job's and the worker's on the lines about a job.
  util::Logger log;
  if (std::string file = settings.value("log_file", ""); !file.empty()) {
    log.open(file);
  }
  log = log.bind({{"client_id", o.client_id}});
  dist::DistClient client(o, net::make_curl_client({3000, 600000}), log);
  auto result = client.run(*job, [&]() -> kiln::expected<std::string, std::string> {
    return dist::load_toolchain_archive(*toolchain, request->compiler_path,
                                        request->compiler_identity, request->cache_dir);
  });
  std::string counters = counters_json(client.counters());
  if (!result) {
    on_result(ctx, nullptr, 0, counters.c_str(),
              std::string(dist::to_string(result.error())).c_str());
    return 1 + static_cast<int>(result.error());
  }
  std::string encoded = dist::encode_result(*result);
  on_result(ctx, encoded.data(), encoded.size(), counters.c_str(), "");
  return 0;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int kiln_dist_run_v1(
    const kiln_dist_request* request, kiln_dist_result_fn on_result, void* ctx) {
  try {
    return run(request, on_result, ctx);
  } catch (const std::exception& e) {
    on_result(ctx, nullptr, 0, "{}", e.what());
    return 101;
  }
}
