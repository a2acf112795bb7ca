// kiln-worker: runs the cluster's jobs (docs/cluster.md).
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <thread>

#include "kiln/cli/daemon_common.hpp"
#include "kiln/dist/worker/worker_service.hpp"
#include "kiln/util/file.hpp"

int main(int argc, char** argv) {
  using namespace kiln;
  CLI::App app{"kiln-worker: compiles the cluster's jobs in a sandbox"};
  app.set_config("--config", "", "TOML file with the settings below (flags win)");
  std::string listen = "127.0.0.1:10501", scheduler, public_url, worker_token, server_id,
              work_dir = "/var/tmp/kiln-worker", scheduler_ca, log_file, log_level = "info";
  int cores = 0, job_timeout_s = 600, drain_grace_s = 300;
  double toolchain_cache_gib = 10, memory_gib = 4, input_cache_gib = 1;
  app.add_option("--listen", listen, "HOST:PORT to serve on")->envname("KILN_DIST_WORKER_LISTEN");
  app.add_option("--scheduler", scheduler, "scheduler URL, http(s)://host:port")
      ->envname("KILN_DIST_SCHEDULER_URL");
  app.add_option("--scheduler-ca", scheduler_ca, "PEM file to trust for an https scheduler")
      ->envname("KILN_DIST_SCHEDULER_CA");
  app.add_option("--public-url", public_url,
                 "URL clients reach this worker at (default https://<listen>)")
      ->envname("KILN_DIST_PUBLIC_URL");
  app.add_option("--worker-token", worker_token, "token shared with the scheduler (or a file)")
      ->envname("KILN_DIST_WORKER_TOKEN");
  app.add_option("--server-id", server_id, "stable name (default <hostname>-<port>)")
      ->envname("KILN_DIST_SERVER_ID");
  app.add_option("--cores", cores, "jobs at once: cores + 1 + cores/8 (default: all cores)")
      ->envname("KILN_DIST_CORES")
      ->check(CLI::Range(0, 4096));
  app.add_option("--work-dir", work_dir, "toolchains and job directories")
      ->envname("KILN_DIST_WORK_DIR");
  app.add_option("--toolchain-cache-gib", toolchain_cache_gib, "size limit of unpacked toolchains")
      ->envname("KILN_DIST_TOOLCHAIN_CACHE_GIB");
  app.add_option("--input-cache-gib", input_cache_gib,
                 "size limit of the job inputs kept to hard-link into later jobs (0: off)")
      ->envname("KILN_DIST_INPUT_CACHE_GIB")
      ->check(CLI::Range(0.0, 1e6));
  app.add_option("--job-timeout-s", job_timeout_s, "wall-time limit of one job")
      ->envname("KILN_DIST_JOB_TIMEOUT_S")
      ->check(CLI::Range(1, 86400));
  app.add_option("--memory-gib", memory_gib, "address-space limit of one job")
      ->envname("KILN_DIST_JOB_MEMORY_GIB");
  app.add_option("--drain-grace-s", drain_grace_s, "after SIGTERM, how long running jobs may take")
      ->envname("KILN_DIST_DRAIN_GRACE_S");
  app.add_option("--log-file", log_file, "JSON-lines log (default: standard error)")
      ->envname("KILN_DIST_LOG_FILE");
  app.add_option("--log-level", log_level, "debug, info, warn or error")
      ->envname("KILN_DIST_LOG_LEVEL");
  CLI11_PARSE(app, argc, argv);

  auto fail = [](const std::string& message) {
    std::fprintf(stderr, "kiln-worker: %s\n", message.c_str());
    return 2;
  };
  dist::WorkerOptions o;
  if (!cli::split_listen(listen, &o.listen_host, &o.listen_port)) {
    return fail("--listen: expected HOST:PORT, got \"" + listen + "\"");
  }
  if (!scheduler.starts_with("http://") && !scheduler.starts_with("https://")) {
    return fail("--scheduler: expected an http:// or https:// URL");
  }
  while (scheduler.ends_with("/")) {
    scheduler.pop_back();
  }
  o.scheduler_url = scheduler;
  auto token = cli::token_value(worker_token);
  if (!token || token->empty()) {
    return fail(token ? "set --worker-token (or KILN_DIST_WORKER_TOKEN)" : token.error());
  }
  o.worker_token = *token;
  if (!scheduler_ca.empty()) {
    auto ca = util::read_file(scheduler_ca);
    if (!ca) {
      return fail("cannot read --scheduler-ca " + scheduler_ca);
    }
    o.scheduler_ca_pem = *ca;
  }
  if (!public_url.empty() && !public_url.starts_with("http://") &&
      !public_url.starts_with("https://")) {
    return fail("--public-url: expected an http:// or https:// URL");
  }
  o.public_url = public_url;
  o.server_id = server_id;
  o.cores = cores;
  o.work_dir = work_dir;
  o.toolchain_cache_bytes = static_cast<uint64_t>(toolchain_cache_gib * (1 << 30));
  o.input_cache_bytes = static_cast<uint64_t>(input_cache_gib * (1 << 30));
  o.limits.wall = std::chrono::seconds(job_timeout_s);
  o.limits.memory_bytes = static_cast<uint64_t>(memory_gib * (1 << 30));
  o.drain_grace = std::chrono::seconds(drain_grace_s);

  auto opened = cli::open_daemon_log(log_file, log_level, "worker");
  if (!opened) {
    return fail(opened.error());
  }
  util::Logger log = std::move(*opened);

  cli::block_termination_signals();
  auto worker = dist::WorkerService::start(o, log);
  if (!worker) {
    return fail("cannot start: " + worker.error());
  }
  std::printf("listening on %s:%u as %s\n", o.listen_host.c_str(), (*worker)->port(),
              (*worker)->server_id().c_str());
  std::fflush(stdout);
  int sig = cli::wait_for_termination();
  if (sig == SIGTERM) {
    (*worker)->drain();  // finish running jobs, deregister
  } else {
    (*worker)->stop();
  }
  return 0;
}
