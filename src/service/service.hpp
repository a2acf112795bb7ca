#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "kiln/service/archive.hpp"
#include "kiln/service/scaling.hpp"
#include "kiln/service/uploader.hpp"
#include "kiln/util/expected.hpp"
#include "kiln/util/log.hpp"

namespace kiln::service {

// One replica of kiln-server (docs/service.md): the REST API, the compile
// loop of its shard, the leader's artifact store when it is replica 0, its
// heartbeat in the membership table and the scaling check.
struct ServiceOptions {
  std::string listen_host = "127.0.0.1";
  uint16_t listen_port = 8080;  // 0: any free port
  int64_t worker_id = 0;
  int64_t workers = 1;
  std::string database_url;  // empty: sqlite:///<data_dir>/kiln-server.db
  // Where replica 0 receives binaries; empty: its URL from the membership
  // table (the leader itself needs none).
  std::string leader_url;
  std::string public_url;     // how the others reach this one; empty: http://<listen>
  std::string data_dir;       // binaries/ (leader), work/, cache/ under it
  int compile_jobs = 2;       // programs compiled at once
  int build_parallelism = 0;  // ninja -j of one program; 0: Ninja's default
  // kiln's inflight_wait_s in the builds: a TU that another build (here or
  // on another replica) is compiling is waited for, not compiled twice.
  int inflight_wait_s = 600;
  uint64_t max_archive_bytes = uint64_t{64} << 20;
  ArchiveLimits archive_limits;
  std::chrono::milliseconds compile_timeout{600000};
  uint64_t max_binary_bytes = uint64_t{512} << 20;
  uint64_t max_build_bytes = uint64_t{10} << 30;  // a build directory
  UploadPolicy upload;
  std::string internal_token;  // required on /v0/internal/* when set
  std::string kiln_path;       // the compiler launcher; empty: none
  std::string cmake_path;      // empty: cmake from $PATH
  KubeOptions kube;            // statefulset set: scaling is checked against Kubernetes
  std::chrono::milliseconds heartbeat_interval{2000};
  std::chrono::milliseconds scaling_interval{10000};
  std::chrono::milliseconds cleanup_interval{300000};
  std::chrono::milliseconds poll_interval{250};  // an idle compile loop's database poll
  int api_threads = 4;
};

class Service {
 public:
  // Called once, from a service thread, when the replica must exit (a
  // scaling mismatch): the exit status and the message already logged.
  using FatalHandler = std::function<void(int exit_code, const std::string& why)>;

  // Opens the database (migrating it), resets this shard's programs left
  // Compiling by an earlier run, binds the listener and starts the threads.
  static expected<std::unique_ptr<Service>, std::string> start(ServiceOptions options,
                                                               util::Logger log,
                                                               FatalHandler on_fatal);
  ~Service();  // stop()
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  uint16_t port() const;
  const std::string& public_url() const;

  // Stops claiming, cancels running builds and puts their programs back to
  // Pending, stops the server. Idempotent.
  void stop();

  struct Impl;

 private:
  explicit Service(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

// The OpenAPI 3 document of the REST API, served at /v0/openapi.json.
std::string_view openapi_document();

}  // namespace kiln::service
