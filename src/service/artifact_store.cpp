#include "kiln/service/artifact_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <optional>

#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"
#include "kiln/util/hex.hpp"

namespace kiln::service {

namespace {

constexpr std::string_view k_temporary_prefix = ".tmp-";
// Bytes hashed and written at a time.
constexpr size_t k_chunk = size_t{1} << 20;

ArtifactError invalid(std::string message) {
  return ArtifactError{ArtifactProblem::invalid, std::move(message)};
}

// A full or read-only disk is no_space: the caller answers 507 and stops
// accepting uploads, rather than 500 and a retry.
ArtifactError from_errno(int err, const std::string& what) {
  const bool space = err == ENOSPC || err == EDQUOT || err == EROFS || err == EFBIG;
  return ArtifactError{space ? ArtifactProblem::no_space : ArtifactProblem::io,
                       what + ": " + std::strerror(err)};
}

expected<void, ArtifactError> check_key(std::string_view program_id, int64_t version) {
  if (!valid_artifact_program_id(program_id)) {
    return unexpected(invalid("\"" + std::string(program_id) + "\" is not a program id"));
  }
  if (version < 1) {
    return unexpected(invalid("version " + std::to_string(version) + " is not >= 1"));
  }
  return {};
}

bool valid_sha256_hex(std::string_view hex) {
  if (hex.size() != 64) {
    return false;
  }
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

// The version a file name stands for: decimal, no sign or leading zero.
std::optional<int64_t> parse_version(std::string_view name) {
  if (name.empty() || name.front() == '0') {
    return std::nullopt;
  }
  int64_t version = 0;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), version);
  if (ec != std::errc() || end != name.data() + name.size() || version < 1) {
    return std::nullopt;
  }
  return version;
}

// fsync of a directory, so that a rename or a new entry in it survives a
// crash.
int sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return errno;
  }
  const int err = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

// A temporary file, closed and removed when it goes out of scope unless
// renamed.
struct Temporary {
  std::string path;
  int fd = -1;
  bool renamed = false;

  ~Temporary() {
    if (fd >= 0) {
      ::close(fd);
    }
    if (!path.empty() && !renamed) {
      ::unlink(path.c_str());
    }
  }
};

// Creates the program's directory (and the store's) and a temporary file in
// it; `created` says whether the program's directory is new.
expected<void, ArtifactError> create_temporary(const std::string& store_dir,
                                               const std::string& program_dir, Temporary& tmp,
                                               bool& created) {
  // A cleanup may remove the program's directory, empty, between the mkdir
  // and the open: then both are done again.
  for (int attempt = 0;; ++attempt) {
    if (auto made = util::make_directories(store_dir); !made) {
      return unexpected(from_errno(made.error(), "creating " + store_dir));
    }
    created = ::mkdir(program_dir.c_str(), 0755) == 0;
    if (!created && errno != EEXIST) {
      return unexpected(from_errno(errno, "creating " + program_dir));
    }
    tmp.path = program_dir + "/" + std::string(k_temporary_prefix) + util::random_hex(12);
    tmp.fd = ::open(tmp.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (tmp.fd >= 0) {
      return {};
    }
    const int err = errno;
    tmp.path.clear();
    if (err != ENOENT || attempt == 3) {
      return unexpected(from_errno(err, "creating a temporary file in " + program_dir));
    }
  }
}

bool stale_temporary(const std::string& path, int64_t cutoff_ns) {
  const util::FileStat stat = util::FileStat::lof(path);
  return stat.is_regular() && stat.mtime_ns < cutoff_ns;
}

}  // namespace

bool valid_artifact_program_id(std::string_view id) {
  if (id.size() != 36) {
    return false;
  }
  for (size_t i = 0; i < id.size(); ++i) {
    const bool hyphen_here = i == 8 || i == 13 || i == 18 || i == 23;
    const char c = id[i];
    const bool ok = hyphen_here ? c == '-' : (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!ok) {
      return false;
    }
  }
  return true;
}

std::string ArtifactStore::path(std::string_view program_id, int64_t version) const {
  return m_dir + "/" + std::string(program_id) + "/" + std::to_string(version);
}

expected<void, ArtifactError> ArtifactStore::put(std::string_view program_id, int64_t version,
                                                 std::string_view sha256_hex,
                                                 std::string_view body) {
  if (auto ok = check_key(program_id, version); !ok) {
    return ok;
  }
  if (!valid_sha256_hex(sha256_hex)) {
    return unexpected(invalid("\"" + std::string(sha256_hex) + "\" is not a SHA-256 in hex"));
  }
  const std::string program_dir = m_dir + "/" + std::string(program_id);
  const std::string final_path = path(program_id, version);
  Temporary tmp;
  bool created = false;
  if (auto ok = create_temporary(m_dir, program_dir, tmp, created); !ok) {
    return ok;
  }

  util::Hasher hasher;
  for (size_t offset = 0; offset < body.size(); offset += k_chunk) {
    const std::string_view chunk = body.substr(offset, k_chunk);
    hasher.update(chunk);
    if (!util::write_all(tmp.fd, chunk)) {
      return unexpected(from_errno(errno, "writing " + tmp.path));
    }
  }
  const std::string actual = hasher.finish().to_hex();
  if (actual != sha256_hex) {
    return unexpected(
        ArtifactError{ArtifactProblem::hash_mismatch,
                      "the body's SHA-256 is " + actual + ", not " + std::string(sha256_hex)});
  }
  if (::fsync(tmp.fd) != 0) {
    return unexpected(from_errno(errno, "syncing " + tmp.path));
  }
  const int fd = tmp.fd;
  tmp.fd = -1;
  // close(2) reports what a file system (NFS) defers, a full disk among it.
  if (::close(fd) != 0) {
    return unexpected(from_errno(errno, "closing " + tmp.path));
  }
  if (::rename(tmp.path.c_str(), final_path.c_str()) != 0) {
    return unexpected(from_errno(errno, "renaming " + tmp.path + " to " + final_path));
  }
  tmp.renamed = true;
  if (const int err = sync_directory(program_dir); err != 0) {
    return unexpected(from_errno(err, "syncing " + program_dir));
  }
  if (created) {
    if (const int err = sync_directory(m_dir); err != 0) {
      return unexpected(from_errno(err, "syncing " + m_dir));
    }
  }
  return {};
}

expected<ArtifactStore::Binary, ArtifactError> ArtifactStore::get(std::string_view program_id,
                                                                  int64_t version) const {
  if (auto ok = check_key(program_id, version); !ok) {
    return unexpected(ok.error());
  }
  const std::string file = path(program_id, version);
  auto data = util::read_file(file);
  if (!data) {
    if (data.error() == ENOENT || data.error() == ENOTDIR) {
      return unexpected(ArtifactError{
          ArtifactProblem::not_found,
          "no binary of " + std::string(program_id) + " version " + std::to_string(version)});
    }
    return unexpected(from_errno(data.error(), "reading " + file));
  }
  Binary binary;
  binary.sha256_hex = util::Hasher().update(*data).finish().to_hex();
  binary.data = std::move(*data);
  return binary;
}

bool ArtifactStore::exists(std::string_view program_id, int64_t version) const {
  return check_key(program_id, version) &&
         util::FileStat::of(path(program_id, version)).is_regular();
}

ArtifactStore::CleanupResult ArtifactStore::cleanup(
    const std::set<std::pair<std::string, int64_t>>& keep, std::chrono::seconds stale_after) {
  namespace fs = std::filesystem;
  const int64_t cutoff_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                (std::chrono::system_clock::now() - stale_after).time_since_epoch())
                                .count();
  CleanupResult result;
  const auto remove_file = [](const std::string& file, int64_t& count) {
    if (::unlink(file.c_str()) == 0) {
      ++count;
    }
  };
  std::error_code ec;
  for (fs::directory_iterator top(m_dir, ec), end; !ec && top != end; top.increment(ec)) {
    const std::string name = top->path().filename().string();
    const std::string program_dir = top->path().string();
    if (name.starts_with(k_temporary_prefix)) {
      if (stale_temporary(program_dir, cutoff_ns)) {
        remove_file(program_dir, result.temporaries_removed);
      }
      continue;
    }
    if (!valid_artifact_program_id(name) || !util::FileStat::lof(program_dir).is_directory()) {
      continue;
    }
    std::error_code inner_ec;
    for (fs::directory_iterator it(program_dir, inner_ec); !inner_ec && it != end;
         it.increment(inner_ec)) {
      const std::string file_name = it->path().filename().string();
      const std::string file = it->path().string();
      if (file_name.starts_with(k_temporary_prefix)) {
        if (stale_temporary(file, cutoff_ns)) {
          remove_file(file, result.temporaries_removed);
        }
      } else if (const auto version = parse_version(file_name)) {
        if (!keep.contains({name, *version})) {
          remove_file(file, result.binaries_removed);
        }
      }
    }
    ::rmdir(program_dir.c_str());  // only when empty
  }
  return result;
}

}  // namespace kiln::service
