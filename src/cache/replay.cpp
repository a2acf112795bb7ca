// Stage: putting a cached result in place of a compilation.
#include <unistd.h>

#include "kiln/cache/compilation.hpp"
#include "kiln/cache/depfile.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/path.hpp"

namespace kiln::cache {

void Compilation::write_output(const util::RunResult& run) {
  util::write_all(STDOUT_FILENO, run.out);
  util::write_all(STDERR_FILENO, run.err);
}

util::LinkMode Compilation::link_mode() const {
  if (m_cfg.file_link == "hardlink") {
    return util::LinkMode::hardlink;
  }
  return m_cfg.file_link == "reflink" ? util::LinkMode::reflink : util::LinkMode::copy;
}

bool Compilation::replay(const Result& result, const util::Digest& result_key) {
  const std::string* out = nullptr;
  const std::string* err = nullptr;
  for (const auto& f : result.files) {
    std::string path;
    std::string rewritten;
    const std::string* data = &f.data;
    switch (f.type) {
      case FileType::object:
        path = m_args.output;
        if (result.external_object_size > 0) {
          std::string dest = util::absolute(path, m_inv.cwd);
          storage::Key key{result_key, storage::EntryKind::result};
          if (!m_local->get_file(key, "o", dest, link_mode()) ||
              static_cast<uint64_t>(util::FileStat::of(dest).size) != result.external_object_size) {
            m_log.event("replay_failed", {{"path", path}, {"reason", "external object"}});
            return false;
          }
          continue;
        }
        break;
      case FileType::depfile:
        if (!m_args.generating_dependencies) {
          continue;
        }
        path = m_args.depfile;
        if (result.depfile_target_length > 0) {
          rewritten = escape_target(m_args.output);
          rewritten.append(f.data, result.depfile_target_length);
          data = &rewritten;
        }
        break;
      case FileType::dwo:
        path = m_args.dwo_file;
        break;
      case FileType::gcno:
        path = m_args.gcno_file;
        break;
      case FileType::out:
        out = &f.data;
        continue;
      case FileType::err:
        err = &f.data;
        continue;
    }
    if (path.empty()) {
      continue;
    }
    if (auto r = util::write_file_atomic(util::absolute(path, m_inv.cwd), *data); !r) {
      m_log.event("replay_failed", {{"path", path}, {"errno", r.error()}});
      return false;
    }
  }
  if (out) {
    util::write_all(STDOUT_FILENO, *out);
  }
  if (err) {
    util::write_all(STDERR_FILENO, *err);
  }
  return true;
}

}  // namespace kiln::cache
