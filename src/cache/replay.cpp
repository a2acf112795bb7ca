// Stage: putting a cached result in place of a compilation.
//
// A hit decodes the result entry in pieces and writes each file while it is
// decompressed, to a temporary name next to its destination; the files are
// renamed into place only once the whole entry has decoded and checked out.
// A large object is thus never whole in memory (ccache writes the same way),
// and a damaged entry leaves no file behind.
#include <unistd.h>

#include <memory>

#include "kiln/cache/compilation.hpp"
#include "kiln/cache/depfile.hpp"
#include "kiln/cache/diagnostics.hpp"
#include "kiln/storage/entry.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/path.hpp"

namespace kiln::cache {

namespace {

// Where the files of a result go; an empty path: not wanted by this call.
struct Destinations {
  std::string object;
  std::string object_as_given;  // the depfile's target, as the compiler writes it
  std::string depfile;
  std::string dwo;
  std::string gcno;
  std::string stack_usage;
  std::string callgraph;
};

class ReplaySink : public ResultSink {
 public:
  explicit ReplaySink(const Destinations& dest) : m_dest(dest) {}

  bool header(uint64_t depfile_target_length, uint64_t external_object_size) override {
    m_depfile_target_length = depfile_target_length;
    m_external_object_size = external_object_size;
    return true;
  }

  bool begin_file(FileType type, uint64_t size) override {
    m_seen[static_cast<size_t>(type)] = true;
    m_file = nullptr;
    m_memory = nullptr;
    const std::string* path = nullptr;
    switch (type) {
      case FileType::object:
        // With an external object the entry holds an empty one.
        if (m_external_object_size > 0) {
          return size == 0;
        }
        path = &m_dest.object;
        break;
      case FileType::depfile:
        // Small, and rewritten on the way out: kept in memory.
        m_memory = &m_depfile;
        return true;
      case FileType::dwo:
        path = &m_dest.dwo;
        break;
      case FileType::gcno:
        path = &m_dest.gcno;
        break;
      case FileType::stack_usage:
        path = &m_dest.stack_usage;
        break;
      case FileType::callgraph:
        path = &m_dest.callgraph;
        break;
      case FileType::out:
        m_memory = &m_stdout;
        return true;
      case FileType::err:
        m_memory = &m_stderr;
        return true;
    }
    if (path->empty()) {
      return true;  // not wanted: its data is skipped
    }
    m_files.push_back(std::make_unique<util::AtomicFile>(*path));
    m_file = m_files.back().get();
    return io(m_file->open(), m_file->path());
  }

  bool file_data(std::string_view piece) override {
    if (m_file) {
      return io(m_file->write(piece), m_file->path());
    }
    if (m_memory) {
      m_memory->append(piece);
    }
    return true;
  }

  bool end_file() override { return true; }

  // Whether the decoded result has what this call needs.
  bool usable(bool want_depfile) const {
    if (!seen(FileType::object) || (want_depfile && !seen(FileType::depfile)) ||
        (!m_dest.stack_usage.empty() && !seen(FileType::stack_usage)) ||
        (!m_dest.callgraph.empty() && !seen(FileType::callgraph))) {
      return false;
    }
    return m_depfile_target_length <= m_depfile.size();
  }

  // Renames the written files into place, then writes the depfile.
  bool commit() {
    for (auto& file : m_files) {
      if (!io(file->commit(), file->path())) {
        return false;
      }
    }
    if (m_dest.depfile.empty()) {
      return true;
    }
    std::string_view data = m_depfile;
    std::string rewritten;
    if (m_depfile_target_length > 0) {
      rewritten = escape_target(m_dest.object_as_given);
      rewritten.append(m_depfile, m_depfile_target_length);
      data = rewritten;
    }
    return io(util::write_file_atomic(m_dest.depfile, data), m_dest.depfile);
  }

  int io_error() const { return m_io_error; }
  const std::string& failed_path() const { return m_failed_path; }
  uint64_t external_object_size() const { return m_external_object_size; }
  const std::string& out() const { return m_stdout; }
  const std::string& err() const { return m_stderr; }

 private:
  bool seen(FileType t) const { return m_seen[static_cast<size_t>(t)]; }

  bool io(const expected<void, int>& r, const std::string& path) {
    if (!r) {
      m_io_error = r.error();
      m_failed_path = path;
      return false;
    }
    return true;
  }

  const Destinations& m_dest;
  uint64_t m_depfile_target_length = 0;
  uint64_t m_external_object_size = 0;
  bool m_seen[k_last_file_type + 1] = {};
  std::vector<std::unique_ptr<util::AtomicFile>> m_files;
  util::AtomicFile* m_file = nullptr;  // the file being written, if any
  std::string* m_memory = nullptr;     // or the buffer being filled, if any
  std::string m_depfile;
  std::string m_stdout;
  std::string m_stderr;
  int m_io_error = 0;
  std::string m_failed_path;
};

}  // namespace

bool Compilation::restyles_diagnostics() const {
  return !m_args.diagnostics_style_given && !m_args.records_command_line &&
         m_compiler.family != compiler::Family::unknown;
}

void Compilation::write_output(std::string_view out, std::string_view err) const {
  if (!out.empty()) {
    m_output.out(out);
  }
  if (err.empty()) {
    return;
  }
  if (restyles_diagnostics()) {
    m_output.err(restyle_diagnostics(
        err, would_colour(m_compiler.family, m_env, m_output.err_is_terminal())));
  } else {
    m_output.err(err);
  }
}

util::LinkMode Compilation::link_mode() const {
  if (m_cfg.file_link == "hardlink") {
    return util::LinkMode::hardlink;
  }
  return m_cfg.file_link == "reflink" ? util::LinkMode::reflink : util::LinkMode::copy;
}

bool Compilation::replay(std::string_view entry_bytes, const util::Digest& result_key) {
  storage::Key key{result_key, storage::EntryKind::result};
  // get_entry checked the frame and the checksum already: the hit path does
  // not hash the entry twice.
  auto entry = storage::check_entry(entry_bytes, key.kind, /*verify_checksum=*/false);
  if (!entry) {
    // Only a bug gets here.
    m_log.event("replay_failed", {{"reason", storage::to_string(entry.error())}});
    return false;
  }
  Destinations dest;
  dest.object = util::join_path(m_inv.cwd, m_args.output);
  dest.object_as_given = m_args.output;
  if (m_args.generating_dependencies) {
    dest.depfile = util::join_path(m_inv.cwd, m_args.depfile);
  }
  if (!m_args.dwo_file.empty()) {
    dest.dwo = util::join_path(m_inv.cwd, m_args.dwo_file);
  }
  if (!m_args.gcno_file.empty()) {
    dest.gcno = util::join_path(m_inv.cwd, m_args.gcno_file);
  }
  if (!m_args.stack_usage_file.empty()) {
    dest.stack_usage = util::join_path(m_inv.cwd, m_args.stack_usage_file);
  }
  if (!m_args.callgraph_file.empty()) {
    dest.callgraph = util::join_path(m_inv.cwd, m_args.callgraph_file);
  }

  ReplaySink sink(dest);
  ResultDecoder decoder(sink);
  storage::StreamEnd end =
      storage::stream_payload(*entry, [&](std::string_view piece) { return decoder.feed(piece); });
  if (sink.io_error() != 0) {
    // A full disk, a missing directory: the compiler will say it better.
    m_log.event("replay_failed", {{"path", sink.failed_path()}, {"errno", sink.io_error()}});
    return false;
  }
  if (end != storage::StreamEnd::done || !decoder.complete() ||
      !sink.usable(m_args.generating_dependencies)) {
    // A good checksum over a payload that does not parse, or a result stored
    // without a file this call needs: never served, and removed from the
    // level it came from (and the levels it was backfilled to), or every
    // later compilation would fetch it again.
    m_stats.add(Counter::corrupt_entry);
    m_log.event("corrupt_entry", {{"key", key.name()}, {"error", "bad_result"}});
    m_chain->discard(key);
    return false;
  }
  if (!sink.commit()) {
    m_log.event("replay_failed", {{"path", sink.failed_path()}, {"errno", sink.io_error()}});
    return false;
  }
  if (sink.external_object_size() > 0) {
    if (!m_local->get_file(key, "o", dest.object, link_mode()) ||
        static_cast<uint64_t>(util::FileStat::of(dest.object).size) !=
            sink.external_object_size()) {
      m_log.event("replay_failed", {{"path", m_args.output}, {"reason", "external object"}});
      return false;
    }
  }
  write_output(sink.out(), sink.err());
  return true;
}

}  // namespace kiln::cache
