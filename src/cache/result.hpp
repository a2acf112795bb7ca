#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::cache {

// What a compilation produced, stored under its result key.
enum class FileType : uint8_t {
  object = 0,
  depfile = 1,
  dwo = 2,
  gcno = 3,
  out = 4,
  err = 5,
  stack_usage = 6,  // -fstack-usage: <output>.su
  callgraph = 7,    // -fcallgraph-info: <output>.ci
};
inline constexpr uint8_t k_last_file_type = 7;

std::string_view to_string(FileType t);

struct Result {
  struct File {
    FileType type;
    std::string data;
  };
  std::vector<File> files;
  // Length of the depfile's first target when kiln may rewrite it on a hit
  // (no -MT/-MQ given: the target is the object path); 0 otherwise.
  uint64_t depfile_target_length = 0;
  // Non-zero when the object is stored beside the entry as a plain file
  // (file_link = hardlink or reflink); its size, checked on a hit. The object
  // File then has empty data.
  uint64_t external_object_size = 0;

  const File* find(FileType t) const;

  std::string serialize() const;
  // nullopt for a malformed payload.
  static std::optional<Result> parse(std::string_view payload);
};

// Receives the parts of a result payload, in order, from a ResultDecoder.
// Returning false stops the decoding.
class ResultSink {
 public:
  virtual ~ResultSink() = default;
  virtual bool header(uint64_t depfile_target_length, uint64_t external_object_size) = 0;
  virtual bool begin_file(FileType type, uint64_t size) = 0;
  virtual bool file_data(std::string_view piece) = 0;
  virtual bool end_file() = 0;
};

// Parses a result payload (the format of Result::serialize) fed in pieces of
// any size, so that a hit can write a large object while it is decompressed
// instead of holding all of it (docs/storage-layout.md).
class ResultDecoder {
 public:
  explicit ResultDecoder(ResultSink& sink) : m_sink(sink) {}

  // False once the payload is malformed or the sink has stopped the decoding
  // (sink_stopped() tells which); later calls return false too.
  bool feed(std::string_view piece);
  // Whether the payload ended right after its last file.
  bool complete() const { return m_state == State::done && !m_failed; }
  bool sink_stopped() const { return m_sink_stopped; }

 private:
  enum class State { header, file_header, file_data, done };
  static constexpr size_t k_header_size = 4 + 8 + 8 + 4;
  static constexpr size_t k_file_header_size = 1 + 8;

  bool fail(bool by_sink);
  bool next_file();

  ResultSink& m_sink;
  State m_state = State::header;
  std::string m_pending;  // bytes of a header not yet complete
  uint32_t m_files = 0;
  uint32_t m_files_done = 0;
  uint64_t m_remaining = 0;  // of the current file's data
  bool m_failed = false;
  bool m_sink_stopped = false;
};

}  // namespace kiln::cache
