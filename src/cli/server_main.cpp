// kiln-server: one replica of the parallel compile service (docs/service.md).
#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "kiln/cli/daemon_common.hpp"
#include "kiln/service/service.hpp"
#include "kiln/util/string.hpp"

namespace {

std::atomic<int> g_exit_code{0};

// "kiln-server-3" -> 3: a StatefulSet pod's ordinal.
std::optional<int64_t> ordinal_of(const std::string& pod_name) {
  size_t dash = pod_name.rfind('-');
  if (dash == std::string::npos) {
    return std::nullopt;
  }
  return kiln::util::parse_int(std::string_view(pod_name).substr(dash + 1));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace kiln;
  CLI::App app{"kiln-server: one replica of kiln's parallel compile service"};
  app.set_config("--config", "", "TOML file with the settings below (flags win)");
  // A flag given twice: the last one wins, as in most daemons' command lines.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::string listen = "127.0.0.1:8080", worker_id_text = "0", database, leader_url, public_url,
              data_dir = "/var/lib/kiln-server", internal_token, kiln_path, statefulset,
              kube_api_url, service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount",
              pod_name, log_file, log_level = "info";
  int64_t workers = 1;
  int compile_jobs = 2, build_jobs = 0, inflight_wait_s = 600, poll_ms = 250,
      compile_timeout_s = 600, upload_retries = 10, upload_backoff_ms = 1000,
      upload_timeout_s = 600, scaling_interval_s = 10, heartbeat_ms = 2000,
      cleanup_interval_s = 300;
  double max_archive_mib = 64, max_unpacked_mib = 512, max_binary_mib = 512, max_build_mib = 10240;
  app.add_option("--listen", listen, "HOST:PORT to serve on")->envname("KILN_SERVER_LISTEN");
  app.add_option("--worker-id", worker_id_text,
                 "this replica's id in [0, workers), or 'auto': the ordinal of --pod-name")
      ->envname("KILN_SERVER_WORKER_ID");
  app.add_option("--pod-name", pod_name, "the pod's name, for --worker-id auto (default $HOSTNAME)")
      ->envname("KILN_SERVER_POD_NAME");
  app.add_option("--workers", workers, "replicas the programs are split between")
      ->envname("KILN_SERVER_WORKERS")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  app.add_option("--database", database,
                 "sqlite:///path (default <data-dir>/kiln-server.db) or postgresql://...")
      ->envname("KILN_SERVER_DATABASE_URL");
  app.add_option("--leader-url", leader_url,
                 "where replica 0 receives binaries (default: from the membership table)")
      ->envname("KILN_SERVER_LEADER_URL");
  app.add_option("--public-url", public_url, "how other replicas reach this one")
      ->envname("KILN_SERVER_PUBLIC_URL");
  app.add_option("--data-dir", data_dir, "binaries, builds and the local cache")
      ->envname("KILN_SERVER_DATA_DIR");
  app.add_option("--compile-jobs", compile_jobs, "programs compiled at once")
      ->envname("KILN_SERVER_COMPILE_JOBS")
      ->check(CLI::Range(1, 1024));
  app.add_option("--inflight-wait-s", inflight_wait_s,
                 "how long a build's miss waits for the same TU compiled elsewhere (0: never)")
      ->envname("KILN_SERVER_INFLIGHT_WAIT_S")
      ->check(CLI::Range(0, 3600));
  app.add_option("--poll-ms", poll_ms,
                 "how often an idle compile thread looks for work (PostgreSQL also notifies)")
      ->envname("KILN_SERVER_POLL_MS")
      ->check(CLI::Range(10, 600000));
  app.add_option("--build-jobs", build_jobs, "ninja -j of one program (0: Ninja's default)")
      ->envname("KILN_SERVER_BUILD_JOBS")
      ->check(CLI::Range(0, 4096));
  app.add_option("--compile-timeout-s", compile_timeout_s, "time limit of one program's build")
      ->envname("KILN_SERVER_COMPILE_TIMEOUT_S")
      ->check(CLI::Range(1, 86400));
  app.add_option("--max-archive-mib", max_archive_mib, "size limit of a submitted archive")
      ->envname("KILN_SERVER_MAX_ARCHIVE_MIB");
  app.add_option("--max-unpacked-mib", max_unpacked_mib, "size limit of an archive's files")
      ->envname("KILN_SERVER_MAX_UNPACKED_MIB");
  app.add_option("--max-binary-mib", max_binary_mib, "size limit of a built executable")
      ->envname("KILN_SERVER_MAX_BINARY_MIB");
  app.add_option("--max-build-mib", max_build_mib, "size limit of a program's build directory")
      ->envname("KILN_SERVER_MAX_BUILD_MIB");
  app.add_option("--upload-retries", upload_retries, "retries of a binary upload to the leader")
      ->envname("KILN_SERVER_UPLOAD_RETRIES")
      ->check(CLI::Range(0, 1000));
  app.add_option("--upload-backoff-ms", upload_backoff_ms, "first delay between retries (doubles)")
      ->envname("KILN_SERVER_UPLOAD_BACKOFF_MS")
      ->check(CLI::Range(1, 3600000));
  app.add_option("--upload-timeout-s", upload_timeout_s, "time limit of one upload attempt")
      ->envname("KILN_SERVER_UPLOAD_TIMEOUT_S")
      ->check(CLI::Range(1, 86400));
  app.add_option("--internal-token", internal_token,
                 "token between replicas for /v0/internal (value or file; default none)")
      ->envname("KILN_SERVER_INTERNAL_TOKEN");
  app.add_option("--kiln", kiln_path,
                 "the kiln binary used as compiler launcher (default: beside "
                 "kiln-server)")
      ->envname("KILN_SERVER_KILN");
  app.add_option("--statefulset", statefulset,
                 "on Kubernetes: the StatefulSet whose replicas are compared with --workers")
      ->envname("KILN_SERVER_STATEFULSET");
  app.add_option("--kube-api-url", kube_api_url,
                 "the Kubernetes API (default https://$KUBERNETES_SERVICE_HOST:$..._PORT)")
      ->envname("KILN_SERVER_KUBE_API_URL");
  app.add_option("--service-account-dir", service_account_dir,
                 "token, namespace and ca.crt of the pod's service account")
      ->envname("KILN_SERVER_SERVICE_ACCOUNT_DIR");
  app.add_option("--scaling-interval-s", scaling_interval_s,
                 "how often the replica count is "
                 "checked")
      ->envname("KILN_SERVER_SCALING_INTERVAL_S")
      ->check(CLI::Range(1, 86400));
  app.add_option("--heartbeat-ms", heartbeat_ms, "membership heartbeat period")
      ->envname("KILN_SERVER_HEARTBEAT_MS")
      ->check(CLI::Range(100, 600000));
  app.add_option("--cleanup-interval-s", cleanup_interval_s,
                 "leader: how often stale binaries and archives are removed")
      ->envname("KILN_SERVER_CLEANUP_INTERVAL_S")
      ->check(CLI::Range(1, 86400));
  app.add_option("--log-file", log_file, "JSON-lines log (default: standard error)")
      ->envname("KILN_SERVER_LOG_FILE");
  app.add_option("--log-level", log_level, "debug, info, warn or error")
      ->envname("KILN_SERVER_LOG_LEVEL");
  CLI11_PARSE(app, argc, argv);

  auto fail = [](const std::string& message) {
    std::fprintf(stderr, "kiln-server: %s\n", message.c_str());
    return 2;
  };
  service::ServiceOptions o;
  if (!cli::split_listen(listen, &o.listen_host, &o.listen_port)) {
    return fail("--listen: expected HOST:PORT, got \"" + listen + "\"");
  }
  if (worker_id_text == "auto") {
    if (pod_name.empty()) {
      const char* host = std::getenv("HOSTNAME");
      pod_name = host ? host : "";
    }
    auto ordinal = ordinal_of(pod_name);
    if (!ordinal) {
      return fail("--worker-id auto: cannot read an ordinal from the pod name \"" + pod_name +
                  "\" (expected <name>-<n>)");
    }
    o.worker_id = *ordinal;
  } else {
    auto id = util::parse_int(worker_id_text);
    if (!id) {
      return fail("--worker-id: expected an integer or auto, got \"" + worker_id_text + "\"");
    }
    o.worker_id = *id;
  }
  if (o.worker_id < 0 || o.worker_id >= workers) {
    return fail("--worker-id " + std::to_string(o.worker_id) + " is not in [0, " +
                std::to_string(workers) + ")");
  }
  o.workers = workers;
  if (!database.empty() && !database.starts_with("sqlite://") &&
      !database.starts_with("postgresql://") && !database.starts_with("postgres://")) {
    return fail("--database: expected sqlite:///path or postgresql://...");
  }
  o.database_url = database;
  for (const std::string* url : {&leader_url, &public_url}) {
    if (!url->empty() && !url->starts_with("http://") && !url->starts_with("https://")) {
      return fail("expected an http:// or https:// URL, got \"" + *url + "\"");
    }
  }
  o.leader_url = leader_url;
  o.public_url = public_url;
  o.data_dir = data_dir;
  o.compile_jobs = compile_jobs;
  o.inflight_wait_s = inflight_wait_s;
  o.poll_interval = std::chrono::milliseconds(poll_ms);
  o.build_parallelism = build_jobs;
  o.compile_timeout = std::chrono::seconds(compile_timeout_s);
  o.max_archive_bytes = static_cast<uint64_t>(max_archive_mib * (1 << 20));
  o.archive_limits.max_unpacked_bytes = static_cast<uint64_t>(max_unpacked_mib * (1 << 20));
  o.max_binary_bytes = static_cast<uint64_t>(max_binary_mib * (1 << 20));
  o.max_build_bytes = static_cast<uint64_t>(max_build_mib * (1 << 20));
  o.upload.retries = upload_retries;
  o.upload.first_delay = std::chrono::milliseconds(upload_backoff_ms);
  o.upload.timeout = std::chrono::seconds(upload_timeout_s);
  if (!internal_token.empty()) {
    auto token = cli::token_value(internal_token);
    if (!token) {
      return fail(token.error());
    }
    o.internal_token = *token;
  }
  if (kiln_path.empty()) {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    if (!ec) {
      auto beside = self.parent_path() / "kiln";
      if (std::filesystem::exists(beside, ec)) {
        kiln_path = beside.string();
      }
    }
    if (kiln_path.empty()) {
      return fail("no kiln beside kiln-server: set --kiln");
    }
  } else if (kiln_path != "none") {
    kiln_path = std::filesystem::absolute(kiln_path).string();
  } else {
    kiln_path.clear();  // builds without the cache
  }
  o.kiln_path = kiln_path;
  o.kube.statefulset = statefulset;
  o.kube.api_url = kube_api_url;
  o.kube.service_account_dir = service_account_dir;
  o.scaling_interval = std::chrono::seconds(scaling_interval_s);
  o.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);
  o.cleanup_interval = std::chrono::seconds(cleanup_interval_s);

  auto opened = cli::open_daemon_log(log_file, log_level, "server");
  if (!opened) {
    return fail(opened.error());
  }
  util::Logger log = std::move(*opened);

  cli::block_termination_signals();
  auto service = service::Service::start(o, log, [](int code, const std::string& why) {
    std::fprintf(stderr, "kiln-server: %s\n", why.c_str());
    g_exit_code = code;
    ::kill(::getpid(), SIGTERM);  // wakes main, which stops the service
  });
  if (!service) {
    return fail("cannot start: " + service.error());
  }
  std::printf("listening on %s as worker %lld of %lld\n", (*service)->public_url().c_str(),
              static_cast<long long>(o.worker_id), static_cast<long long>(o.workers));
  std::fflush(stdout);
  cli::wait_for_termination();
  (*service)->stop();
  return g_exit_code.load();
}
