#include "kiln/cache/result.hpp"

#include <algorithm>

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
    case FileType::stack_usage:
      return "stack_usage";
    case FileType::callgraph:
      return "callgraph";
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

namespace {

// Collects a whole Result in memory (small payloads, tests, tools).
class CollectingSink : public ResultSink {
 public:
  // reserve_limit: the most a file can hold (the size of the whole payload);
  // a larger size in a damaged header must not reserve memory.
  CollectingSink(Result& result, size_t reserve_limit)
      : m_result(result), m_reserve_limit(reserve_limit) {}
  bool header(uint64_t depfile_target_length, uint64_t external_object_size) override {
    m_result.depfile_target_length = depfile_target_length;
    m_result.external_object_size = external_object_size;
    return true;
  }
  bool begin_file(FileType type, uint64_t size) override {
    m_result.files.push_back({type, {}});
    if (size <= m_reserve_limit) {
      m_result.files.back().data.reserve(static_cast<size_t>(size));
    }
    return true;
  }
  bool file_data(std::string_view piece) override {
    m_result.files.back().data.append(piece);
    return true;
  }
  bool end_file() override { return true; }

 private:
  Result& m_result;
  size_t m_reserve_limit;
};

}  // namespace

std::optional<Result> Result::parse(std::string_view payload) {
  Result res;
  CollectingSink sink(res, payload.size());
  ResultDecoder decoder(sink);
  if (!decoder.feed(payload) || !decoder.complete()) {
    return std::nullopt;
  }
  if (const File* d = res.find(FileType::depfile);
      res.depfile_target_length > (d ? d->data.size() : 0)) {
    return std::nullopt;
  }
  return res;
}

bool ResultDecoder::fail(bool by_sink) {
  m_failed = true;
  m_sink_stopped = by_sink;
  return false;
}

bool ResultDecoder::next_file() {
  if (!m_sink.end_file()) {
    return fail(true);
  }
  ++m_files_done;
  m_state = m_files_done == m_files ? State::done : State::file_header;
  return true;
}

bool ResultDecoder::feed(std::string_view piece) {
  if (m_failed) {
    return false;
  }
  while (!piece.empty()) {
    if (m_state == State::done) {
      return fail(false);  // bytes after the last file
    }
    if (m_state == State::file_data) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(m_remaining, piece.size()));
      if (!m_sink.file_data(piece.substr(0, n))) {
        return fail(true);
      }
      piece.remove_prefix(n);
      m_remaining -= n;
      if (m_remaining == 0 && !next_file()) {
        return false;
      }
      continue;
    }
    // A header: gather its fixed size, possibly across pieces.
    size_t need = m_state == State::header ? k_header_size : k_file_header_size;
    size_t take = std::min(need - m_pending.size(), piece.size());
    m_pending.append(piece.substr(0, take));
    piece.remove_prefix(take);
    if (m_pending.size() < need) {
      break;
    }
    const char* p = m_pending.data();
    if (m_state == State::header) {
      if (util::load_le32(p) != k_result_version) {
        return fail(false);
      }
      m_files = util::load_le32(p + 20);
      if (m_files > 16) {
        return fail(false);
      }
      if (!m_sink.header(util::load_le64(p + 4), util::load_le64(p + 12))) {
        return fail(true);
      }
      m_state = m_files == 0 ? State::done : State::file_header;
    } else {
      auto type = static_cast<uint8_t>(p[0]);
      if (type > k_last_file_type) {
        return fail(false);
      }
      m_remaining = util::load_le64(p + 1);
      if (!m_sink.begin_file(static_cast<FileType>(type), m_remaining)) {
        return fail(true);
      }
      m_state = State::file_data;
      if (m_remaining == 0 && !next_file()) {
        return false;
      }
    }
    m_pending.clear();
  }
  return true;
}

}  // namespace kiln::cache
