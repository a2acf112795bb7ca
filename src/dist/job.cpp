#include "kiln/dist/job.hpp"

#include <nlohmann/json.hpp>

#include "kiln/util/compress.hpp"
#include "kiln/util/serial.hpp"
#include "kiln/util/string.hpp"

namespace kiln::dist {

using nlohmann::json;

namespace {

constexpr std::string_view k_job_magic = "KJOB1";
constexpr std::string_view k_result_magic = "KRES1";

bool components_ok(std::string_view path) {
  for (auto part : util::split(path, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return false;
    }
  }
  return path.find('\0') == std::string_view::npos;
}

std::string frame(std::string_view magic, const json& header,
                  const std::vector<std::string_view>& blobs) {
  std::string raw;
  std::string head = header.dump(-1, ' ', false, json::error_handler_t::replace);
  util::append_le(raw, head.size(), 4);
  raw += head;
  for (auto b : blobs) {
    raw.append(b);
  }
  std::string out(magic);
  util::append_le(out, raw.size(), 8);
  out += util::zstd_compress(raw, 1);
  return out;
}

// The header and the blob area of a framed body.
expected<std::pair<json, std::string>, std::string> unframe(std::string_view body,
                                                            std::string_view magic,
                                                            const JobLimits& limits) {
  if (body.size() < magic.size() + 8 || body.substr(0, magic.size()) != magic) {
    return unexpected(std::string("not a kiln job body (bad magic)"));
  }
  uint64_t size = util::load_le64(body.data() + magic.size());
  if (size > limits.max_bytes) {
    return unexpected("body expands to " + std::to_string(size) + " bytes, over the limit of " +
                      std::to_string(limits.max_bytes));
  }
  std::string raw;
  if (!util::zstd_decompress(body.substr(magic.size() + 8), size, &raw)) {
    return unexpected(std::string("corrupt compressed body"));
  }
  if (raw.size() < 4) {
    return unexpected(std::string("truncated body"));
  }
  uint32_t head_len = util::load_le32(raw.data());
  if (head_len > raw.size() - 4) {
    return unexpected(std::string("truncated header"));
  }
  json header = json::parse(raw.begin() + 4, raw.begin() + 4 + head_len, nullptr, false);
  if (header.is_discarded() || !header.is_object()) {
    return unexpected(std::string("malformed JSON header"));
  }
  return std::pair{std::move(header), raw.substr(4 + head_len)};
}

// Reads `files` ([{"path", "size"}]) out of `blobs` in order.
expected<std::vector<JobFile>, std::string> read_files(const json& files, std::string_view* blobs,
                                                       const JobLimits& limits) {
  std::vector<JobFile> out;
  if (!files.is_array() || files.size() > limits.max_files) {
    return unexpected(std::string("files: expected an array of at most ") +
                      std::to_string(limits.max_files));
  }
  for (const auto& f : files) {
    if (!f.is_object() || !f.contains("path") || !f["path"].is_string() || !f.contains("size") ||
        !f["size"].is_number_unsigned()) {
      return unexpected(std::string("files: each needs a path and a size"));
    }
    std::string path = f["path"].get<std::string>();
    if (!is_safe_relative_path(path)) {
      return unexpected("refused path \"" + path + "\": absolute, empty or with . or ..");
    }
    uint64_t size = f["size"].get<uint64_t>();
    if (size > blobs->size()) {
      return unexpected("file " + path + " is cut short");
    }
    out.push_back({std::move(path), std::string(blobs->substr(0, size))});
    blobs->remove_prefix(size);
  }
  return out;
}

json file_list(const std::vector<JobFile>& files, std::vector<std::string_view>* blobs) {
  json list = json::array();
  for (const auto& f : files) {
    list.push_back({{"path", f.path}, {"size", f.data.size()}});
    blobs->push_back(f.data);
  }
  return list;
}

expected<std::vector<std::string>, std::string> strings(const json& header, const char* key,
                                                        size_t max) {
  auto it = header.find(key);
  if (it == header.end() || !it->is_array() || it->size() > max) {
    return unexpected(std::string(key) + ": expected an array of at most " + std::to_string(max) +
                      " strings");
  }
  std::vector<std::string> out;
  for (const auto& s : *it) {
    if (!s.is_string()) {
      return unexpected(std::string(key) + ": expected strings");
    }
    out.push_back(s.get<std::string>());
  }
  return out;
}

}  // namespace

bool is_safe_relative_path(std::string_view path) {
  return !path.empty() && path.size() <= 4096 && path.front() != '/' && components_ok(path);
}

bool is_safe_absolute_dir(std::string_view path) {
  if (path == "/") {
    return true;
  }
  return path.size() > 1 && path.size() <= 4096 && path.front() == '/' && path.back() != '/' &&
         components_ok(path.substr(1));
}

std::string encode_job(const JobRequest& job) {
  std::vector<std::string_view> blobs;
  json header{{"toolchain", job.toolchain},
              {"argv", job.argv},
              {"cwd", job.cwd},
              {"env", job.env},
              {"outputs", job.outputs},
              {"inputs", file_list(job.inputs, &blobs)}};
  return frame(k_job_magic, header, blobs);
}

expected<JobRequest, std::string> decode_job(std::string_view body, const JobLimits& limits) {
  auto framed = unframe(body, k_job_magic, limits);
  if (!framed) {
    return unexpected(framed.error());
  }
  const json& h = framed->first;
  JobRequest job;
  if (!h.contains("toolchain") || !h["toolchain"].is_string() || !h.contains("cwd") ||
      !h["cwd"].is_string()) {
    return unexpected(std::string("missing toolchain or cwd"));
  }
  job.toolchain = h["toolchain"].get<std::string>();
  job.cwd = h["cwd"].get<std::string>();
  if (!is_safe_absolute_dir(job.cwd)) {
    return unexpected("refused cwd \"" + job.cwd + "\": not an absolute, normalized path");
  }
  auto argv = strings(h, "argv", limits.max_args);
  auto env = strings(h, "env", limits.max_args);
  auto outputs = strings(h, "outputs", limits.max_files);
  if (!argv || !env || !outputs) {
    return unexpected(!argv ? argv.error() : !env ? env.error() : outputs.error());
  }
  job.argv = std::move(*argv);
  job.env = std::move(*env);
  job.outputs = std::move(*outputs);
  if (job.argv.empty() || !job.argv[0].starts_with("/")) {
    return unexpected(std::string("argv[0] must be the compiler's absolute path"));
  }
  for (const auto& o : job.outputs) {
    if (!is_safe_relative_path(o)) {
      return unexpected("refused output path \"" + o + "\": absolute, empty or with . or ..");
    }
  }
  std::string_view blobs = framed->second;
  auto inputs = read_files(h.contains("inputs") ? h["inputs"] : json::array(), &blobs, limits);
  if (!inputs) {
    return unexpected(inputs.error());
  }
  if (!blobs.empty()) {
    return unexpected(std::string("trailing bytes after the inputs"));
  }
  job.inputs = std::move(*inputs);
  return job;
}

std::string encode_result(const JobResult& result) {
  std::vector<std::string_view> blobs{result.out, result.err};
  json header{{"exit_code", result.exit_code},
              {"stdout_size", result.out.size()},
              {"stderr_size", result.err.size()}};
  header["outputs"] = file_list(result.outputs, &blobs);
  return frame(k_result_magic, header, blobs);
}

expected<JobResult, std::string> decode_result(std::string_view body, const JobLimits& limits) {
  auto framed = unframe(body, k_result_magic, limits);
  if (!framed) {
    return unexpected(framed.error());
  }
  const json& h = framed->first;
  if (!h.contains("exit_code") || !h["exit_code"].is_number_integer() ||
      !h.contains("stdout_size") || !h["stdout_size"].is_number_unsigned() ||
      !h.contains("stderr_size") || !h["stderr_size"].is_number_unsigned()) {
    return unexpected(std::string("malformed result header"));
  }
  JobResult r;
  r.exit_code = h["exit_code"].get<int>();
  std::string_view blobs = framed->second;
  uint64_t out_size = h["stdout_size"].get<uint64_t>();
  uint64_t err_size = h["stderr_size"].get<uint64_t>();
  if (out_size > blobs.size() || err_size > blobs.size() - out_size) {
    return unexpected(std::string("result cut short"));
  }
  r.out = std::string(blobs.substr(0, out_size));
  r.err = std::string(blobs.substr(out_size, err_size));
  blobs.remove_prefix(out_size + err_size);
  auto outputs = read_files(h.contains("outputs") ? h["outputs"] : json::array(), &blobs, limits);
  if (!outputs) {
    return unexpected(outputs.error());
  }
  r.outputs = std::move(*outputs);
  return r;
}

}  // namespace kiln::dist
