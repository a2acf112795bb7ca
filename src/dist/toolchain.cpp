#include "kiln/dist/toolchain.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>

#include "kiln/util/file.hpp"
#include "kiln/util/hash.hpp"
#include "kiln/util/path.hpp"
#include "kiln/util/process.hpp"
#include "kiln/util/string.hpp"

namespace kiln::dist {
namespace {

constexpr int k_zstd_level = 3;
constexpr int k_max_symlink_hops = 40;

std::string join_path(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    out += '/';
    out += p;
  }
  return out.empty() ? "/" : out;
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

bool is_elf(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  char magic[4] = {};
  bool elf = ::read(fd, magic, sizeof magic) == 4 && std::memcmp(magic,
                                                                 "\x7f"
                                                                 "ELF",
                                                                 4) == 0;
  ::close(fd);
  return elf;
}

// One entry of the archive, keyed by its absolute path without the leading slash.
struct Entry {
  bool symlink = false;
  std::string target;  // symlink: as readlink(2) says
  uint32_t mode = 0;   // regular file: permission bits
};

// The files of a toolchain: every path added is resolved one component at a
// time, as the kernel would, and each symlink met becomes an entry of its own
// (so /lib -> usr/lib and g++ -> g++-12 exist in the unpacked tree too).
class Collector {
 public:
  // Adds `path` (absolute) and the symlinks on its way; returns its real path.
  expected<std::string, std::string> add(const std::string& path) {
    std::deque<std::string> pending;
    for (auto& p : util::path_components(path)) {
      pending.push_back(std::move(p));
    }
    std::vector<std::string> resolved;
    int hops = 0;
    while (!pending.empty()) {
      std::string part = std::move(pending.front());
      pending.pop_front();
      if (part == ".") {
        continue;
      }
      if (part == "..") {
        if (!resolved.empty()) {
          resolved.pop_back();
        }
        continue;
      }
      resolved.push_back(std::move(part));
      std::string current = join_path(resolved);
      auto st = util::FileStat::lof(current);
      if (!st.exists()) {
        return unexpected(current + ": " + std::strerror(st.error) + " (resolving " + path + ")");
      }
      if (S_ISLNK(st.mode)) {
        if (++hops > k_max_symlink_hops) {
          return unexpected(path + ": too many symbolic links");
        }
        char buf[PATH_MAX];
        ssize_t n = ::readlink(current.c_str(), buf, sizeof buf);
        if (n <= 0 || static_cast<size_t>(n) >= sizeof buf) {
          return unexpected(current + ": cannot read the symbolic link");
        }
        std::string target(buf, static_cast<size_t>(n));
        m_entries[current.substr(1)] = Entry{true, target, 0};
        resolved.pop_back();
        if (target.front() == '/') {
          resolved.clear();
        }
        auto parts = util::path_components(target);
        pending.insert(pending.begin(), parts.begin(), parts.end());
      } else if (!pending.empty() && !S_ISDIR(st.mode)) {
        return unexpected(current + ": not a directory (resolving " + path + ")");
      }
    }
    std::string real = join_path(resolved);
    auto st = util::FileStat::lof(real);
    if (!st.is_regular()) {
      return unexpected(path + ": resolves to " + real + ", not a regular file");
    }
    m_entries[real.substr(1)] = Entry{false, {}, st.mode & 0777};
    return real;
  }

  // Adds `program` and, if it is an ELF file, the shared libraries and the
  // dynamic loader ldd says it loads.
  expected<void, std::string> add_program(const std::string& program) {
    auto real = add(program);
    if (!real) {
      return unexpected(real.error());
    }
    if (!is_elf(*real)) {
      return {};
    }
    auto libs = libraries_of(*real);
    if (!libs) {
      return unexpected(libs.error());
    }
    for (const auto& lib : *libs) {
      if (auto added = add(lib); !added) {
        return unexpected(added.error());
      }
    }
    return {};
  }

  const std::map<std::string, Entry>& entries() const { return m_entries; }

 private:
  // ldd's answer: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)",
  // "/lib64/ld-linux-x86-64.so.2 (0x...)", "linux-vdso.so.1 (0x...)" (no file).
  static expected<std::vector<std::string>, std::string> libraries_of(const std::string& elf) {
    auto run = util::run_capture({"/usr/bin/ldd", elf});
    if (!run) {
      return unexpected("cannot run ldd: " + std::string(std::strerror(run.error())));
    }
    if (run->out.find("statically linked") != std::string::npos ||
        run->out.find("not a dynamic executable") != std::string::npos ||
        run->err.find("not a dynamic executable") != std::string::npos) {
      return std::vector<std::string>{};
    }
    if (run->exit_code != 0) {
      return unexpected("ldd " + elf + " failed: " + run->err);
    }
    std::vector<std::string> libs;
    size_t start = 0;
    while (start < run->out.size()) {
      size_t end = run->out.find('\n', start);
      if (end == std::string::npos) {
        end = run->out.size();
      }
      std::string_view line(run->out.data() + start, end - start);
      start = end + 1;
      if (line.find("not found") != std::string_view::npos) {
        return unexpected(elf + ": a library is missing:" + std::string(line));
      }
      auto arrow = line.find("=> ");
      std::string_view file = arrow == std::string_view::npos ? line : line.substr(arrow + 3);
      while (!file.empty() && (file.front() == ' ' || file.front() == '\t')) {
        file.remove_prefix(1);
      }
      file = file.substr(0, file.find(" ("));
      if (!file.empty() && file.front() == '/') {
        libs.emplace_back(file);
      }
    }
    return libs;
  }

  std::map<std::string, Entry> m_entries;
};

// Asks the driver where it finds `prog` (-print-prog-name): an absolute path
// when it has its own, the bare name when it leaves it to PATH.
expected<std::string, std::string> prog_name(const std::string& driver, const std::string& prog) {
  auto run = util::run_capture({driver, "-print-prog-name=" + prog});
  if (!run || run->exit_code != 0) {
    return unexpected(driver + " -print-prog-name=" + prog + " failed");
  }
  std::string out = run->out;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) {
    out.pop_back();
  }
  return out;
}

// GCC runs a bare `as` from PATH. The client's PATH is not ours to read here,
// so look where the worker's sandbox will (docs/dist-protocol.md): the
// driver's own directory, then the system's.
std::string find_program(const std::string& name, const std::string& driver) {
  for (const std::string& dir : {dir_of(driver), std::string("/usr/local/bin"),
                                 std::string("/usr/bin"), std::string("/bin")}) {
    std::string candidate = (dir == "/" ? "" : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return {};
}

// Compresses what libarchive writes as it comes, at a fixed level with the
// frame checksum on (libarchive's own zstd filter has no checksum option), so
// that a damaged archive fails to read rather than unpacking wrong bytes.
class ZstdSink {
 public:
  ZstdSink() : m_ctx(ZSTD_createCCtx()) {
    ZSTD_CCtx_setParameter(m_ctx, ZSTD_c_compressionLevel, k_zstd_level);
    ZSTD_CCtx_setParameter(m_ctx, ZSTD_c_checksumFlag, 1);
  }
  ~ZstdSink() { ZSTD_freeCCtx(m_ctx); }
  ZstdSink(const ZstdSink&) = delete;
  ZstdSink& operator=(const ZstdSink&) = delete;

  bool write(const void* data, size_t size, ZSTD_EndDirective mode) {
    ZSTD_inBuffer in{data, size, 0};
    char buf[1 << 16];
    while (true) {
      ZSTD_outBuffer out{buf, sizeof buf, 0};
      size_t left = ZSTD_compressStream2(m_ctx, &out, &in, mode);
      if (ZSTD_isError(left)) {
        return false;
      }
      m_out.append(buf, out.pos);
      bool finished = mode == ZSTD_e_end ? left == 0 : in.pos == in.size;
      if (finished) {
        return true;
      }
    }
  }
  std::string take() { return std::move(m_out); }

 private:
  ZSTD_CCtx* m_ctx;
  std::string m_out;
};

la_ssize_t write_callback(struct archive*, void* sink, const void* data, size_t size) {
  return static_cast<ZstdSink*>(sink)->write(data, size, ZSTD_e_continue)
             ? static_cast<la_ssize_t>(size)
             : -1;
}

using ArchivePtr = std::unique_ptr<struct archive, int (*)(struct archive*)>;
using EntryPtr = std::unique_ptr<struct archive_entry, void (*)(struct archive_entry*)>;

// The tar of `entries`, in their (byte) order, with nothing of the machine or
// the moment in it: mtime 0, owner 0:0 without names.
expected<std::string, std::string> write_archive(const std::map<std::string, Entry>& entries) {
  ZstdSink sink;
  ArchivePtr a(archive_write_new(), archive_write_free);
  if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
      archive_write_open(a.get(), &sink, nullptr, write_callback, nullptr) != ARCHIVE_OK) {
    return unexpected("cannot start the archive: " + std::string(archive_error_string(a.get())));
  }
  for (const auto& [name, e] : entries) {
    EntryPtr entry(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_mtime(entry.get(), 0, 0);
    archive_entry_set_uid(entry.get(), 0);
    archive_entry_set_gid(entry.get(), 0);
    std::string content;
    if (e.symlink) {
      archive_entry_set_filetype(entry.get(), AE_IFLNK);
      archive_entry_set_perm(entry.get(), 0777);
      archive_entry_set_symlink(entry.get(), e.target.c_str());
      archive_entry_set_size(entry.get(), 0);
    } else {
      auto data = util::read_file("/" + name);
      if (!data) {
        return unexpected("/" + name + ": " + std::strerror(data.error()));
      }
      content = std::move(*data);
      archive_entry_set_filetype(entry.get(), AE_IFREG);
      archive_entry_set_perm(entry.get(), e.mode);
      archive_entry_set_size(entry.get(), static_cast<la_int64_t>(content.size()));
    }
    if (archive_write_header(a.get(), entry.get()) != ARCHIVE_OK) {
      return unexpected(name + ": " + archive_error_string(a.get()));
    }
    size_t done = 0;
    while (done < content.size()) {
      la_ssize_t n = archive_write_data(a.get(), content.data() + done, content.size() - done);
      if (n <= 0) {
        return unexpected(name + ": " + archive_error_string(a.get()));
      }
      done += static_cast<size_t>(n);
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK || !sink.write(nullptr, 0, ZSTD_e_end)) {
    return unexpected(std::string("cannot finish the archive"));
  }
  return sink.take();
}

bool is_hex(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

Toolchain make_toolchain(std::string archive, std::vector<std::string> files) {
  Toolchain t;
  t.id = util::Hasher().update(archive).finish().to_hex();
  t.archive = std::move(archive);
  t.files = std::move(files);
  return t;
}

}  // namespace

expected<Toolchain, std::string> package_toolchain(const std::string& compiler_path) {
  if (compiler_path.empty() || compiler_path.front() != '/') {
    return unexpected("the compiler's path must be absolute: " + compiler_path);
  }
  Collector collector;
  if (auto added = collector.add_program(compiler_path); !added) {
    return unexpected(added.error());
  }
  // GCC's driver names its compilers proper by absolute path; clang's has
  // none (it answers the bare name) and assembles with its integrated
  // assembler, so for clang the driver is all.
  auto cc1plus = prog_name(compiler_path, "cc1plus");
  if (!cc1plus) {
    return unexpected(cc1plus.error());
  }
  if (!cc1plus->empty() && cc1plus->front() == '/') {
    for (const char* prog : {"cc1", "cc1plus", "as"}) {
      auto path = prog_name(compiler_path, prog);
      if (!path) {
        return unexpected(path.error());
      }
      std::string found =
          !path->empty() && path->front() == '/' ? *path : find_program(*path, compiler_path);
      if (found.empty()) {
        return unexpected(compiler_path + " runs " + *path + ", which was not found");
      }
      if (auto added = collector.add_program(found); !added) {
        return unexpected(added.error());
      }
    }
  }
  // clang finds libstdc++'s headers through the GCC installation it detects
  // (a directory holding crtbegin.o) and spells them through it
  // (/usr/bin/../lib/gcc/<triple>/12/../../../../include/c++/12/...), so
  // that directory must exist where the job runs.
  if (cc1plus->empty() || cc1plus->front() != '/') {
    auto libgcc = util::run_capture({compiler_path, "-print-libgcc-file-name"});
    if (libgcc && libgcc->exit_code == 0) {
      std::string dir = std::string(util::trim(libgcc->out));
      dir = dir.substr(0, dir.rfind('/'));
      if (util::FileStat::of(dir + "/crtbegin.o").is_regular()) {
        if (auto added = collector.add(dir + "/crtbegin.o"); !added) {
          return unexpected(added.error());
        }
      }
    }
  }
  // The locale data: the compiler's messages use typographic quotes only
  // where setlocale() finds a UTF-8 locale, and a remote compile must print
  // what a local one prints. C.UTF-8 (Debian's, from libc-bin) and the
  // compiled archive of the locales the machine has generated, if any; the
  // compiler's translated messages (gcc.mo) are not packed.
  std::error_code ec;
  for (const char* dir : {"/usr/lib/locale/C.utf8", "/usr/lib/locale/C.UTF-8"}) {
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
      if (e.is_regular_file(ec)) {
        if (auto added = collector.add(e.path().string()); !added) {
          return unexpected(added.error());
        }
      }
    }
    ec.clear();
  }
  if (util::FileStat::of("/usr/lib/locale/locale-archive").is_regular()) {
    if (auto added = collector.add("/usr/lib/locale/locale-archive"); !added) {
      return unexpected(added.error());
    }
  }
  auto archive = write_archive(collector.entries());
  if (!archive) {
    return unexpected(archive.error());
  }
  std::vector<std::string> files;
  for (const auto& entry : collector.entries()) {
    files.push_back("/" + entry.first);
  }
  return make_toolchain(std::move(*archive), std::move(files));
}

expected<std::vector<std::string>, std::string> list_toolchain(std::string_view archive) {
  ArchivePtr a(archive_read_new(), archive_read_free);
  archive_read_support_filter_zstd(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), archive.data(), archive.size()) != ARCHIVE_OK) {
    return unexpected("not a toolchain archive: " + std::string(archive_error_string(a.get())));
  }
  std::vector<std::string> files;
  struct archive_entry* entry = nullptr;
  int r;
  while ((r = archive_read_next_header(a.get(), &entry)) == ARCHIVE_OK) {
    files.push_back("/" + std::string(archive_entry_pathname(entry)));
    // Reads (and so checks) the content: a damaged frame fails here.
    if (archive_read_data_skip(a.get()) != ARCHIVE_OK) {
      return unexpected("damaged toolchain archive: " + std::string(archive_error_string(a.get())));
    }
  }
  if (r != ARCHIVE_EOF) {
    return unexpected("damaged toolchain archive: " + std::string(archive_error_string(a.get())));
  }
  std::sort(files.begin(), files.end());
  return files;
}

expected<Toolchain, std::string> cached_toolchain(const std::string& compiler_path,
                                                  const std::string& identity_hex,
                                                  const std::string& cache_dir) {
  if (!is_hex(identity_hex)) {
    return unexpected("not a compiler identity: " + identity_hex);
  }
  const std::string dir = cache_dir + "/toolchains";
  const std::string path = dir + "/" + identity_hex + ".tar.zst";
  if (auto data = util::read_file(path)) {
    if (auto files = list_toolchain(*data)) {
      return make_toolchain(std::move(*data), std::move(*files));
    }
  }
  auto toolchain = package_toolchain(compiler_path);
  if (!toolchain) {
    return toolchain;
  }
  // Not being able to remember it costs a packing next time, nothing else.
  if (util::make_directories(dir)) {
    (void)util::write_file_atomic(path, toolchain->archive);
  }
  return toolchain;
}

expected<ToolchainRef, std::string> cached_toolchain_ref(const std::string& compiler_path,
                                                         const std::string& identity_hex,
                                                         const std::string& cache_dir) {
  if (!is_hex(identity_hex)) {
    return unexpected("not a compiler identity: " + identity_hex);
  }
  const std::string base = cache_dir + "/toolchains/" + identity_hex;
  ToolchainRef ref{"", base + ".tar.zst"};
  if (auto id = util::read_file(base + ".id")) {
    std::string text(util::trim(*id));
    if (text.size() == 64 && is_hex(text) && util::FileStat::of(ref.archive_path).is_regular()) {
      ref.id = std::move(text);
      return ref;
    }
  }
  auto toolchain = cached_toolchain(compiler_path, identity_hex, cache_dir);
  if (!toolchain) {
    return unexpected(toolchain.error());
  }
  ref.id = toolchain->id;
  // Without the id file the next job reads and checks the archive again:
  // slower, nothing else.
  (void)util::write_file_atomic(base + ".id", ref.id + "\n");
  return ref;
}

expected<std::string, std::string> read_toolchain_archive(const ToolchainRef& ref) {
  auto data = util::read_file(ref.archive_path);
  if (!data) {
    return unexpected("cannot read the toolchain " + ref.archive_path + ": " +
                      std::strerror(data.error()));
  }
  if (util::Hasher().update(*data).finish().to_hex() != ref.id) {
    return unexpected("the toolchain " + ref.archive_path + " is not " + ref.id +
                      " any more (damaged or replaced)");
  }
  return std::move(*data);
}

expected<std::string, std::string> load_toolchain_archive(const ToolchainRef& ref,
                                                          const std::string& compiler_path,
                                                          const std::string& identity_hex,
                                                          const std::string& cache_dir) {
  auto archive = read_toolchain_archive(ref);
  if (archive) {
    return archive;
  }
  const std::string base = cache_dir + "/toolchains/" + identity_hex;
  (void)::unlink((base + ".id").c_str());
  (void)::unlink((base + ".tar.zst").c_str());
  auto repacked = cached_toolchain(compiler_path, identity_hex, cache_dir);
  if (!repacked) {
    return unexpected(archive.error() + "; packing it again failed: " + repacked.error());
  }
  (void)util::write_file_atomic(base + ".id", repacked->id + "\n");
  if (repacked->id != ref.id) {
    return unexpected("the compiler now packs to " + repacked->id + ", not " + ref.id);
  }
  return std::move(repacked->archive);
}

}  // namespace kiln::dist
