// kiln-scheduler: the build cluster's scheduler (docs/cluster.md).
#include <CLI/CLI.hpp>
#include <cstdio>

#include "kiln/cli/daemon_common.hpp"
#include "kiln/dist/scheduler/scheduler_service.hpp"
#include "kiln/util/file.hpp"

int main(int argc, char** argv) {
  using namespace kiln;
  CLI::App app{"kiln-scheduler: hands the cache's misses to the cluster's workers"};
  app.set_config("--config", "", "TOML file with the settings below (flags win)");
  std::string listen = "127.0.0.1:10600";
  std::string client_token, worker_token, tls_cert, tls_key, log_file, log_level = "info";
  int heartbeat_ms = 2000, missed = 3, max_wait_ms = 60000, io_threads = 1;
  app.add_option("--listen", listen, "HOST:PORT to serve on")->envname("KILN_DIST_LISTEN");
  app.add_option("--client-token", client_token, "token clients present (or a file holding it)")
      ->envname("KILN_DIST_CLIENT_TOKEN");
  app.add_option("--worker-token", worker_token, "token workers present (or a file holding it)")
      ->envname("KILN_DIST_WORKER_TOKEN");
  app.add_option("--heartbeat-interval-ms", heartbeat_ms, "how often workers heartbeat")
      ->envname("KILN_DIST_HEARTBEAT_INTERVAL_MS")
      ->check(CLI::Range(50, 600000));
  app.add_option("--missed-heartbeats", missed, "silent intervals before a worker is pruned")
      ->envname("KILN_DIST_MISSED_HEARTBEATS")
      ->check(CLI::Range(1, 1000));
  app.add_option("--max-wait-ms", max_wait_ms, "longest an allocation waits for a free slot")
      ->envname("KILN_DIST_MAX_WAIT_MS")
      ->check(CLI::Range(0, 3600000));
  app.add_option("--io-threads", io_threads,
                 "threads serving HTTP (placement runs under one lock; more help with TLS)")
      ->envname("KILN_DIST_IO_THREADS")
      ->check(CLI::Range(1, 64));
  app.add_option("--tls-cert", tls_cert, "PEM certificate: serve HTTPS")
      ->envname("KILN_DIST_TLS_CERT");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert")
      ->envname("KILN_DIST_TLS_KEY");
  app.add_option("--log-file", log_file, "JSON-lines log (default: standard error)")
      ->envname("KILN_DIST_LOG_FILE");
  app.add_option("--log-level", log_level, "debug, info, warn or error")
      ->envname("KILN_DIST_LOG_LEVEL");
  CLI11_PARSE(app, argc, argv);

  auto fail = [](const std::string& message) {
    std::fprintf(stderr, "kiln-scheduler: %s\n", message.c_str());
    return 2;
  };
  dist::SchedulerServiceOptions options;
  if (!cli::split_listen(listen, &options.server.host, &options.server.port)) {
    return fail("--listen: expected HOST:PORT, got \"" + listen + "\"");
  }
  auto ct = cli::token_value(client_token);
  auto wt = cli::token_value(worker_token);
  if (!ct || !wt) {
    return fail(!ct ? ct.error() : wt.error());
  }
  if (ct->empty() || wt->empty()) {
    return fail(
        "set --client-token and --worker-token (or KILN_DIST_CLIENT_TOKEN and "
        "KILN_DIST_WORKER_TOKEN)");
  }
  options.client_token = *ct;
  options.worker_token = *wt;
  if (!tls_cert.empty() || !tls_key.empty()) {
    auto cert = util::read_file(tls_cert);
    auto key = util::read_file(tls_key);
    if (!cert || !key) {
      return fail("cannot read --tls-cert or --tls-key");
    }
    options.server.tls = net::TlsIdentity{*cert, *key};
  }
  options.server.threads = io_threads;
  options.scheduler.heartbeat_interval = std::chrono::milliseconds(heartbeat_ms);
  options.scheduler.missed_heartbeats = missed;
  options.scheduler.max_wait = std::chrono::milliseconds(max_wait_ms);

  auto opened = cli::open_daemon_log(log_file, log_level, "scheduler");
  if (!opened) {
    return fail(opened.error());
  }
  util::Logger log = std::move(*opened);

  cli::block_termination_signals();
  auto service = dist::SchedulerService::start(options, util::Clock::system(), log);
  if (!service) {
    return fail("cannot start: " + service.error());
  }
  log.event("scheduler_started",
            {{"listen", options.server.host}, {"port", static_cast<int64_t>((*service)->port())}});
  // The bound port, for scripts that asked for port 0.
  std::printf("listening on %s:%u\n", options.server.host.c_str(), (*service)->port());
  std::fflush(stdout);
  int sig = cli::wait_for_termination();
  log.event("scheduler_stopping", {{"signal", sig}});
  (*service)->stop();
  return 0;
}
