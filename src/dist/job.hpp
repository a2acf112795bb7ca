#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/util/expected.hpp"

// What a client sends a worker to run, and what comes back
// (docs/dist-protocol.md, "Jobs"). Binary bodies: a 5-byte magic, the
// uncompressed size (u64, little-endian), then one zstd frame holding a
// u32-length-prefixed JSON header followed by the files' bytes in the
// header's order. Decoding checks every size against limits before it
// allocates, and every path before anything touches a disk.
namespace kiln::dist {

struct JobFile {
  // Inputs: the file's absolute path without its leading '/' (the job runs in
  // a root of its own). Outputs: relative to the working directory. Checked.
  std::string path;
  std::string data;
};

struct JobRequest {
  std::string toolchain;  // id of the toolchain to run in
  // The compile exactly as the client would run it: argv[0] is the
  // compiler's absolute path inside the toolchain, the other arguments are
  // unchanged, so the object is the one a local compile makes (debug
  // information and the recorded switches included).
  std::vector<std::string> argv;
  std::string cwd;               // the client's working directory (absolute): the job runs there
  std::vector<std::string> env;  // "NAME=value", the whole environment of the compiler
  // The source and every header the compile reads, at their absolute paths
  // (as sccache-dist sends them): the worker lays them out in the job's root
  // beside the toolchain.
  std::vector<JobFile> inputs;
  std::vector<std::string> outputs;  // relative to cwd: sent back if the compiler writes them
};

struct JobResult {
  int exit_code = 0;
  std::string out;               // the compiler's stdout
  std::string err;               // its stderr
  std::vector<JobFile> outputs;  // those of JobRequest::outputs that exist
};

struct JobLimits {
  uint64_t max_bytes = uint64_t{512} << 20;  // uncompressed body
  size_t max_files = 10000;
  size_t max_args = 100000;
};

std::string encode_job(const JobRequest& job);
expected<JobRequest, std::string> decode_job(std::string_view body, const JobLimits& limits = {});
std::string encode_result(const JobResult& result);
expected<JobResult, std::string> decode_result(std::string_view body, const JobLimits& limits = {});

// A path a job may name: relative, not empty, no "." or ".." component, no
// empty component, no NUL; at most 4096 bytes.
bool is_safe_relative_path(std::string_view path);
// A working directory: absolute, normalized (no "." or "..", no "//"), at
// most 4096 bytes.
bool is_safe_absolute_dir(std::string_view path);

}  // namespace kiln::dist
