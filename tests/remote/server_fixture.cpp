#include "server_fixture.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <utility>

#include "kiln/net/plain_client.hpp"
#include "kiln/util/process.hpp"
#include "kiln/util/string.hpp"

extern char** environ;

namespace kiln::test {

namespace {

constexpr int k_start_attempts = 4;
constexpr int k_start_timeout_ms = 30000;

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// A socket bound to 127.0.0.1:0 and listening; *port receives its port.
int listen_loopback(int* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -1;
  }
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return -1;
  }
  *port = ntohs(addr.sin_port);
  return fd;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

bool write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  return static_cast<bool>(out);
}

// Starts a server on a free port, retrying with another port when it dies or
// never listens (a port race with another process). `argv_for` builds the
// command line for a port; `prepare` may write config files for it.
template <typename ArgvFor, typename Prepare>
std::unique_ptr<ChildProcess> start_on_free_port(const ArgvFor& argv_for, const Prepare& prepare,
                                                 const std::string& log, int* port,
                                                 std::string* why) {
  for (int attempt = 0; attempt < k_start_attempts; ++attempt) {
    *port = free_port();
    if (*port <= 0 || !prepare(*port)) {
      *why = "cannot pick a port or write the server configuration";
      continue;
    }
    auto child = ChildProcess::spawn(argv_for(*port), log);
    if (!child) {
      *why = "cannot spawn " + argv_for(*port)[0];
      continue;
    }
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(k_start_timeout_ms);
    while (std::chrono::steady_clock::now() < deadline && child->running()) {
      if (wait_for_port(*port, 100)) {
        return child;
      }
    }
    *why = argv_for(*port)[0] + " did not start on port " + std::to_string(*port) + ": " +
           read_text(log);
  }
  return nullptr;
}

}  // namespace

TempDir::TempDir() {
  char tmpl[] = "/tmp/kiln-remote-test-XXXXXX";
  if (::mkdtemp(tmpl)) {
    m_path = tmpl;
  }
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!m_path.empty()) {
    std::filesystem::remove_all(m_path, ec);
  }
}

int free_port() {
  int port = 0;
  int fd = listen_loopback(&port);
  if (fd < 0) {
    return -1;
  }
  ::close(fd);
  return port;
}

bool wait_for_port(int port, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  do {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = loopback(port);
    bool ok = fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    if (fd >= 0) {
      ::close(fd);
    }
    if (ok) {
      return true;
    }
    ::usleep(50 * 1000);
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

std::string find_program(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::string dirs = std::string(path ? path : "") + ":/usr/sbin:/sbin:/root/.pyenv/shims";
  for (const auto& dir : util::split(dirs, ':')) {
    if (dir.empty()) {
      continue;
    }
    std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return {};
}

ProgramResult run_python(const std::string& script) {
  ProgramResult result;
  std::string python = find_program("python3");
  if (python.empty()) {
    result.err = "python3 not found in PATH";
    return result;
  }
  auto run = util::run_capture({python, "-c", script});
  if (!run) {
    result.err = "cannot run python3";
    return result;
  }
  result.exit_code = run->exit_code;
  result.out = std::move(run->out);
  result.err = std::move(run->err);
  return result;
}

std::unique_ptr<ChildProcess> ChildProcess::spawn(const std::vector<std::string>& argv,
                                                  const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);

  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, argv[0].c_str(), &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return nullptr;
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid));
}

bool ChildProcess::running() {
  if (m_reaped) {
    return false;
  }
  int status = 0;
  if (::waitpid(m_pid, &status, WNOHANG) == m_pid) {
    m_reaped = true;
    return false;
  }
  return true;
}

ChildProcess::~ChildProcess() {
  // The child leads its own process group: this also stops nginx's workers.
  ::kill(-m_pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (running() && std::chrono::steady_clock::now() < deadline) {
    ::usleep(20 * 1000);
  }
  if (running()) {
    ::kill(-m_pid, SIGKILL);
    ::waitpid(m_pid, nullptr, 0);
    m_reaped = true;
  }
}

bool servers_required() {
  const char* value = std::getenv("KILN_REQUIRE_SERVERS");
  return value != nullptr && *value != '\0' && std::string_view(value) != "0";
}

namespace {

// For a server that is not installed: skip (*missing), or fail when
// KILN_REQUIRE_SERVERS is set.
void not_installed(const std::string& what, std::string* why, bool* missing) {
  *missing = !servers_required();
  *why = what;
  if (!*missing) {
    *why += " (KILN_REQUIRE_SERVERS is set: missing servers fail)";
  }
}

}  // namespace

std::unique_ptr<MotoServer> MotoServer::start(std::string* why, bool* missing) {
  std::string moto = find_program("moto_server");
  *missing = false;
  if (moto.empty()) {
    not_installed("moto_server is not installed (pip install 'moto[server]')", why, missing);
    return nullptr;
  }
  std::unique_ptr<MotoServer> server(new MotoServer);
  server->m_dir = std::make_unique<TempDir>();
  std::string log = server->m_dir->path() + "/moto.log";
  server->m_process = start_on_free_port(
      [&](int port) {
        return std::vector<std::string>{moto, "-H", "127.0.0.1", "-p", std::to_string(port)};
      },
      [](int) { return true; }, log, &server->m_port, why);
  if (!server->m_process) {
    return nullptr;
  }
  return server;
}

std::string MotoServer::endpoint() const {
  return "127.0.0.1:" + std::to_string(m_port);
}

std::string MotoServer::url() const {
  return "http://" + endpoint();
}

ProgramResult MotoServer::boto3(const std::string& script, const std::string& key,
                                const std::string& secret) const {
  std::string preamble = R"(
import json, sys
import boto3
from botocore.config import Config
URL = ")" + url() + R"("
def client(service, key, secret):
    return boto3.client(service, endpoint_url=URL, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        config=Config(s3={"addressing_style": "path"}))
s3 = client("s3", ")" + key +
                         R"(", ")" + secret + R"(")
iam = client("iam", ")" + key +
                         R"(", ")" + secret + R"(")
)";
  return run_python(preamble + script);
}

bool MotoServer::set_auth(long long free_requests) const {
  auto client = net::make_plain_client();
  auto r = client->post(url() + "/moto-api/reset-auth", std::to_string(free_requests));
  return r && r->status == 200;
}

std::unique_ptr<NginxServer> NginxServer::start(std::string* why, bool* missing) {
  std::string nginx = find_program("nginx");
  *missing = false;
  if (nginx.empty()) {
    not_installed("nginx is not installed (apt-get install nginx-light)", why, missing);
    return nullptr;
  }
  std::unique_ptr<NginxServer> server(new NginxServer);
  server->m_dir = std::make_unique<TempDir>();
  const std::string dir = server->m_dir->path();
  std::filesystem::create_directories(dir + "/root/protected");
  std::filesystem::create_directories(dir + "/tmp");
  // Running as root, nginx's workers would switch to "nobody", which cannot
  // write to the temporary directory; keep them as the current user.
  std::string user = ::geteuid() == 0 ? "user root;\n" : "";
  auto prepare = [&](int port) {
    std::string conf = user + R"(worker_processes 1;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log info;
events { worker_connections 64; }
http {
  access_log @DIR@/access.log;
  client_body_temp_path @DIR@/tmp/body;
  proxy_temp_path @DIR@/tmp/proxy;
  fastcgi_temp_path @DIR@/tmp/fastcgi;
  uwsgi_temp_path @DIR@/tmp/uwsgi;
  scgi_temp_path @DIR@/tmp/scgi;
  server {
    listen 127.0.0.1:@PORT@;
    root @DIR@/root;
    client_max_body_size 0;
    location / {
      dav_methods PUT DELETE;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }
    location /protected/ {
      dav_methods PUT DELETE;
      create_full_put_path on;
      limit_except GET HEAD { deny all; }
    }
  }
}
)";
    conf = replace_all(replace_all(conf, "@DIR@", dir), "@PORT@", std::to_string(port));
    return write_text(dir + "/nginx.conf", conf);
  };
  server->m_process = start_on_free_port(
      [&](int) {
        return std::vector<std::string>{
            nginx, "-p",         dir, "-c", dir + "/nginx.conf", "-e", dir + "/error.log",
            "-g",  "daemon off;"};
      },
      prepare, dir + "/nginx.log", &server->m_port, why);
  if (!server->m_process) {
    *why += read_text(dir + "/error.log");
    return nullptr;
  }
  return server;
}

std::string NginxServer::url() const {
  return "http://127.0.0.1:" + std::to_string(m_port);
}

std::string NginxServer::root() const {
  return m_dir->path() + "/root";
}

SilentServer::SilentServer() {
  m_fd = listen_loopback(&m_port);
}

SilentServer::~SilentServer() {
  if (m_fd >= 0) {
    ::close(m_fd);
  }
}

bool SilentServer::connected() const {
  pollfd p{m_fd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

RecordingServer::RecordingServer(int status, std::string body)
    : m_status(status), m_body(std::move(body)) {
  m_fd = listen_loopback(&m_port);
  m_thread = std::thread([this] { serve(); });
}

RecordingServer::~RecordingServer() {
  m_stop = true;
  m_thread.join();
  if (m_fd >= 0) {
    ::close(m_fd);
  }
}

std::string RecordingServer::url() const {
  return "http://127.0.0.1:" + std::to_string(m_port);
}

std::vector<std::string> RecordingServer::requests() const {
  std::lock_guard<std::mutex> lock(m_mutex);
  return m_requests;
}

void RecordingServer::serve() {
  while (!m_stop && m_fd >= 0) {
    pollfd p{m_fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) {
      continue;
    }
    int conn = ::accept4(m_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
      continue;
    }
    // Reads the head, then as many body bytes as Content-Length says.
    std::string request;
    size_t wanted = std::string::npos;
    char buf[65536];
    while (wanted == std::string::npos || request.size() < wanted) {
      pollfd c{conn, POLLIN, 0};
      if (::poll(&c, 1, 2000) <= 0) {
        break;
      }
      ssize_t n = ::read(conn, buf, sizeof(buf));
      if (n <= 0) {
        break;
      }
      request.append(buf, static_cast<size_t>(n));
      auto head_end = request.find("\r\n\r\n");
      if (wanted == std::string::npos && head_end != std::string::npos) {
        size_t length = 0;
        std::string head = request.substr(0, head_end);
        for (auto& c : head) {
          c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        }
        if (auto at = head.find("\r\ncontent-length:"); at != std::string::npos) {
          length = std::strtoul(head.c_str() + at + 17, nullptr, 10);
        }
        wanted = head_end + 4 + length;
      }
    }
    {
      std::lock_guard<std::mutex> lock(m_mutex);
      m_requests.push_back(request);
    }
    bool head = request.starts_with("HEAD ");
    std::string response = "HTTP/1.1 " + std::to_string(m_status) +
                           " Canned\r\nContent-Length: " + std::to_string(m_body.size()) +
                           "\r\nConnection: close\r\n\r\n" + (head ? "" : m_body);
    [[maybe_unused]] ssize_t written = ::write(conn, response.data(), response.size());
    ::close(conn);
  }
}

}  // namespace kiln::test
