#include "kiln/cache/result.hpp"

#include "kiln/util/serial.hpp"

namespace kiln::cache {

namespace {
constexpr uint32_t k_result_version = 1;
}

std::string_view to_string(FileType t) {
  switch (t) {
    case FileType::object:
      return "object";
    case FileType::depfile:
      return "depfile";
    case FileType::dwo:
      return "dwo";
    case FileType::gcno:
      return "gcno";
    case FileType::out:
      return "stdout";
    case FileType::err:
      return "stderr";
  }
  return "?";
}

const Result::File* Result::find(FileType t) const {
  for (const auto& f : files) {
    if (f.type == t) {
      return &f;
    }
  }
  return nullptr;
}

std::string Result::serialize() const {
  util::Writer w;
  w.u32(k_result_version);
  w.u64(depfile_target_length);
  w.u64(external_object_size);
  w.u32(static_cast<uint32_t>(files.size()));
  for (const auto& f : files) {
    w.u8(static_cast<uint8_t>(f.type));
    w.bytes(f.data);
  }
  return std::move(w.str());
}

std::optional<Result> Result::parse(std::string_view payload) {
  util::Reader r(payload);
  if (r.u32() != k_result_version) {
    return std::nullopt;
  }
  Result res;
  res.depfile_target_length = r.u64();
  res.external_object_size = r.u64();
  uint32_t n = r.u32();
  if (!r.ok() || n > 16) {
    return std::nullopt;
  }
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t type = r.u8();
    if (type > static_cast<uint8_t>(FileType::err)) {
      return std::nullopt;
    }
    res.files.push_back({static_cast<FileType>(type), r.bytes()});
  }
  if (!r.ok() || !r.at_end()) {
    return std::nullopt;
  }
  if (const File* d = res.find(FileType::depfile);
      res.depfile_target_length > (d ? d->data.size() : 0)) {
    return std::nullopt;
  }
  return res;
}

}  // namespace kiln::cache
