#pragma once

#include <sys/types.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kiln::test {

// A fresh directory under /tmp, removed with its content on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return m_path; }

 private:
  std::string m_path;
};

// A port on 127.0.0.1 that was free a moment ago (bound to port 0, read, closed).
int free_port();
// Whether 127.0.0.1:port accepts a TCP connection within `timeout_ms`.
bool wait_for_port(int port, int timeout_ms);
// The absolute path of `name` in PATH (then in /usr/sbin, /sbin), or "".
std::string find_program(const std::string& name);

struct ProgramResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs python3 -c `script` to completion (boto3 must be importable).
ProgramResult run_python(const std::string& script);

// A process started in its own process group; the destructor stops the group
// (SIGTERM, then SIGKILL after 5 s) and reaps the process.
class ChildProcess {
 public:
  // argv[0] is an absolute path; stdout and stderr go to `log_path`.
  static std::unique_ptr<ChildProcess> spawn(const std::vector<std::string>& argv,
                                             const std::string& log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  bool running();
  pid_t pid() const { return m_pid; }

 private:
  explicit ChildProcess(pid_t pid) : m_pid(pid) {}
  pid_t m_pid;
  bool m_reaped = false;
};

// Whether KILN_REQUIRE_SERVERS is set (to anything but "" or "0"), as .ci/run
// does: then a server that is not installed fails its tests instead of
// skipping them (start() leaves *missing false and says so in *why), so that
// CI cannot pass with whole suites silently not run.
bool servers_required();

// moto_server (S3, IAM, STS) on a free loopback port, started in a temporary
// directory and stopped on destruction.
class MotoServer {
 public:
  // nullptr and *why set when it cannot start; *missing is set when moto_server
  // is not installed at all (unless servers_required()).
  static std::unique_ptr<MotoServer> start(std::string* why, bool* missing);

  int port() const { return m_port; }
  std::string endpoint() const;  // "127.0.0.1:<port>"
  std::string url() const;       // "http://127.0.0.1:<port>"

  // Runs a Python script after a preamble that defines URL and
  // client(service, key, secret) (boto3, path-style, us-east-1), with
  // `s3` = client("s3", key, secret) and `iam` likewise.
  ProgramResult boto3(const std::string& script, const std::string& key = "setup",
                      const std::string& secret = "setup") const;

  // Sets moto's IAM authentication: requests after the first `free_requests`
  // must be signed with known keys and be allowed by IAM policies; a huge
  // value turns authentication off. Returns false if moto did not accept it.
  bool set_auth(long long free_requests) const;

 private:
  MotoServer() = default;
  std::unique_ptr<TempDir> m_dir;
  std::unique_ptr<ChildProcess> m_process;
  int m_port = 0;
};

// nginx with WebDAV on a free loopback port: "/" accepts GET HEAD PUT DELETE
// into root(); "/protected/" refuses writes with 403.
class NginxServer {
 public:
  // As MotoServer::start.
  static std::unique_ptr<NginxServer> start(std::string* why, bool* missing);

  int port() const { return m_port; }
  std::string url() const;  // "http://127.0.0.1:<port>"
  std::string root() const;

 private:
  NginxServer() = default;
  std::unique_ptr<TempDir> m_dir;
  std::unique_ptr<ChildProcess> m_process;
  int m_port = 0;
};

// A socket listening on 127.0.0.1 that never accepts: connects succeed (the
// kernel's backlog) but no byte is ever answered.
class SilentServer {
 public:
  SilentServer();
  ~SilentServer();
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;

  int port() const { return m_port; }
  // Whether a client has connected (a connection waits in the backlog).
  bool connected() const;

 private:
  int m_fd = -1;
  int m_port = 0;
};

// A one-connection-at-a-time HTTP server on 127.0.0.1 answering every request
// with a fixed status and body, and recording the raw requests. Thread-safe.
class RecordingServer {
 public:
  RecordingServer(int status, std::string body);
  ~RecordingServer();
  RecordingServer(const RecordingServer&) = delete;
  RecordingServer& operator=(const RecordingServer&) = delete;

  int port() const { return m_port; }
  std::string url() const;
  // The requests received so far (request line, headers and body).
  std::vector<std::string> requests() const;

 private:
  void serve();

  int m_fd = -1;
  int m_port = 0;
  int m_status;
  std::string m_body;
  std::atomic<bool> m_stop{false};
  mutable std::mutex m_mutex;
  std::vector<std::string> m_requests;
  std::thread m_thread;
};

}  // namespace kiln::test
