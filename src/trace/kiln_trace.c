/*
 * libkiln-trace.so: preloaded (LD_PRELOAD) into the compiler when kiln runs it
 * on a cache miss, it records what the compiler's processes looked at, so that
 * a later hit is served only if the compiler, run again, would open the same
 * files (docs/direct-mode.md, "What the compiler looked at").
 *
 * It appends one line per event to the file named by KILN_TRACE_FILE:
 *   E <path>   a process started; <path> is its executable (/proc/self/exe)
 *   A <path>   a lookup of <path> failed with ENOENT or ENOTDIR (open, stat,
 *              access, ...): a file created there later could change what
 *              the compiler does
 *   R <path>   <path> was opened for reading
 *   W <path>   <path> was opened for writing, renamed to or made (mkdir)
 *   T          the local time was asked for (__DATE__, __TIME__,
 *              __TIMESTAMP__ however they were spelled)
 * Relative paths are as the compiler passed them (relative to its working
 * directory, which is kiln's); a path relative to another directory
 * descriptor is made absolute through /proc/self/fd.
 *
 * Without KILN_TRACE_FILE every function only calls the real one. Each line
 * is written with one write(2) on an O_APPEND descriptor, so lines of
 * parallel processes never interleave. errno is preserved. The library calls
 * no function it interposes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int g_fd = -1;

/* Paths already written by this process (FNV-1a hashes, open addressing):
 * compilers look the same names up many times. */
#define SEEN_SLOTS 8192
static uint64_t g_seen[SEEN_SLOTS];
static unsigned g_seen_count;

static uint64_t hash_event(char kind, const char* path) {
  uint64_t h = 1469598103934665603ull ^ (unsigned char)kind;
  h *= 1099511628211ull;
  for (const unsigned char* p = (const unsigned char*)path; *p; ++p) {
    h ^= *p;
    h *= 1099511628211ull;
  }
  return h ? h : 1;
}

/* True if the event was not written before by this process. */
static int first_time(char kind, const char* path) {
  if (g_seen_count >= SEEN_SLOTS / 2) {
    return 1; /* table full: write duplicates rather than lose events */
  }
  uint64_t h = hash_event(kind, path);
  for (unsigned i = (unsigned)(h % SEEN_SLOTS);; i = (i + 1) % SEEN_SLOTS) {
    if (g_seen[i] == h) {
      return 0;
    }
    if (g_seen[i] == 0) {
      g_seen[i] = h;
      ++g_seen_count;
      return 1;
    }
  }
}

static void emit(char kind, const char* path) {
  if (g_fd < 0) {
    return;
  }
  if (path == NULL) {
    path = "";
  }
  size_t n = strlen(path);
  if (n > 4000 || memchr(path, '\n', n) != NULL || !first_time(kind, path)) {
    return;
  }
  char line[4100];
  line[0] = kind;
  line[1] = ' ';
  memcpy(line + 2, path, n);
  line[n + 2] = '\n';
  ssize_t ignored = syscall(SYS_write, g_fd, line, n + 3);
  (void)ignored;
}

/* A path relative to `dirfd` spelled so that kiln can find it again. */
static void emit_at(char kind, int dirfd, const char* path) {
  if (path == NULL) {
    return;
  }
  if (dirfd == AT_FDCWD || path[0] == '/') {
    emit(kind, path);
    return;
  }
  char link[64];
  char dir[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", dirfd);
  ssize_t n = syscall(SYS_readlink, link, dir, sizeof dir - 1);
  if (n <= 0) {
    emit(kind, path); /* cannot tell: kiln treats the trace as incomplete */
    return;
  }
  dir[n] = '\0';
  char full[8200];
  snprintf(full, sizeof full, "%s/%s", dir, path);
  emit(kind, full);
}

__attribute__((constructor)) static void kiln_trace_init(void) {
  const char* file = getenv("KILN_TRACE_FILE");
  if (file == NULL || file[0] == '\0') {
    return;
  }
  g_fd = (int)syscall(SYS_openat, AT_FDCWD, file, O_WRONLY | O_APPEND | O_CLOEXEC);
  if (g_fd < 0) {
    return;
  }
  char exe[4096];
  ssize_t n = syscall(SYS_readlink, "/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = '\0';
  emit('E', exe);
}

/* Not inlined: glibc declares most of these paths non-null. */
__attribute__((noinline)) static int named(const char* path) {
  return path != NULL && path[0] != '\0';
}

static void after_lookup(int result_failed, int dirfd, const char* path) {
  if (result_failed && (errno == ENOENT || errno == ENOTDIR)) {
    int saved = errno;
    emit_at('A', dirfd, path);
    errno = saved;
  }
}

static void after_open(int fd, int dirfd, const char* path, int flags) {
  int saved = errno;
  if (fd < 0) {
    after_lookup(1, dirfd, path);
  } else if ((flags & O_ACCMODE) == O_RDONLY) {
    if (!(flags & O_DIRECTORY)) {
      emit_at('R', dirfd, path);
    }
  } else {
    emit_at('W', dirfd, path);
  }
  errno = saved;
}

#define REAL(name)                                           \
  static __typeof__(name)* real_##name;                      \
  if (real_##name == NULL) {                                 \
    real_##name = (__typeof__(name)*)dlsym(RTLD_NEXT, #name); \
  }

static mode_t mode_arg(int flags, va_list ap) {
  return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  REAL(open);
  int fd = real_open(path, flags, mode);
  after_open(fd, AT_FDCWD, path, flags);
  return fd;
}

int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  REAL(open64);
  int fd = real_open64(path, flags, mode);
  after_open(fd, AT_FDCWD, path, flags);
  return fd;
}

int openat(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  REAL(openat);
  int fd = real_openat(dirfd, path, flags, mode);
  after_open(fd, dirfd, path, flags);
  return fd;
}

int openat64(int dirfd, const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  mode_t mode = mode_arg(flags, ap);
  va_end(ap);
  REAL(openat64);
  int fd = real_openat64(dirfd, path, flags, mode);
  after_open(fd, dirfd, path, flags);
  return fd;
}

int __open_2(const char* path, int flags) {
  REAL(__open_2);
  int fd = real___open_2(path, flags);
  after_open(fd, AT_FDCWD, path, flags);
  return fd;
}

int __open64_2(const char* path, int flags) {
  REAL(__open64_2);
  int fd = real___open64_2(path, flags);
  after_open(fd, AT_FDCWD, path, flags);
  return fd;
}

static int fopen_flags(const char* mode) {
  if (mode == NULL) {
    return O_RDONLY;
  }
  if (mode[0] == 'r' && strchr(mode, '+') == NULL) {
    return O_RDONLY;
  }
  return O_RDWR;
}

FILE* fopen(const char* path, const char* mode) {
  REAL(fopen);
  FILE* f = real_fopen(path, mode);
  after_open(f ? 0 : -1, AT_FDCWD, path, fopen_flags(mode));
  return f;
}

FILE* fopen64(const char* path, const char* mode) {
  REAL(fopen64);
  FILE* f = real_fopen64(path, mode);
  after_open(f ? 0 : -1, AT_FDCWD, path, fopen_flags(mode));
  return f;
}

FILE* freopen(const char* path, const char* mode, FILE* stream) {
  REAL(freopen);
  FILE* f = real_freopen(path, mode, stream);
  if (path != NULL) {
    after_open(f ? 0 : -1, AT_FDCWD, path, fopen_flags(mode));
  }
  return f;
}

int stat(const char* path, struct stat* st) {
  REAL(stat);
  int r = real_stat(path, st);
  after_lookup(r != 0, AT_FDCWD, path);
  return r;
}

int stat64(const char* path, struct stat64* st) {
  REAL(stat64);
  int r = real_stat64(path, st);
  after_lookup(r != 0, AT_FDCWD, path);
  return r;
}

int lstat(const char* path, struct stat* st) {
  REAL(lstat);
  int r = real_lstat(path, st);
  after_lookup(r != 0, AT_FDCWD, path);
  return r;
}

int lstat64(const char* path, struct stat64* st) {
  REAL(lstat64);
  int r = real_lstat64(path, st);
  after_lookup(r != 0, AT_FDCWD, path);
  return r;
}

int fstatat(int dirfd, const char* path, struct stat* st, int flags) {
  REAL(fstatat);
  int r = real_fstatat(dirfd, path, st, flags);
  if (!(flags & AT_EMPTY_PATH) || named(path)) {
    after_lookup(r != 0, dirfd, path);
  }
  return r;
}

int fstatat64(int dirfd, const char* path, struct stat64* st, int flags) {
  REAL(fstatat64);
  int r = real_fstatat64(dirfd, path, st, flags);
  if (!(flags & AT_EMPTY_PATH) || named(path)) {
    after_lookup(r != 0, dirfd, path);
  }
  return r;
}

int statx(int dirfd, const char* path, int flags, unsigned mask, struct statx* st) {
  REAL(statx);
  int r = real_statx(dirfd, path, flags, mask, st);
  if (!(flags & AT_EMPTY_PATH) || named(path)) {
    after_lookup(r != 0, dirfd, path);
  }
  return r;
}

int access(const char* path, int mode) {
  REAL(access);
  int r = real_access(path, mode);
  after_lookup(r != 0, AT_FDCWD, path);
  return r;
}

int faccessat(int dirfd, const char* path, int mode, int flags) {
  REAL(faccessat);
  int r = real_faccessat(dirfd, path, mode, flags);
  after_lookup(r != 0, dirfd, path);
  return r;
}

char* realpath(const char* path, char* resolved) {
  REAL(realpath);
  char* r = real_realpath(path, resolved);
  after_lookup(r == NULL, AT_FDCWD, path);
  return r;
}

ssize_t readlink(const char* path, char* buf, size_t size) {
  REAL(readlink);
  ssize_t r = real_readlink(path, buf, size);
  after_lookup(r < 0, AT_FDCWD, path);
  return r;
}

struct __dirstream;
typedef struct __dirstream DIR;
DIR* opendir(const char* path) {
  REAL(opendir);
  DIR* d = real_opendir(path);
  after_lookup(d == NULL, AT_FDCWD, path);
  return d;
}

static void after_create(int failed, int dirfd, const char* path) {
  if (!failed) {
    int saved = errno;
    emit_at('W', dirfd, path);
    errno = saved;
  }
}

int rename(const char* from, const char* to) {
  REAL(rename);
  int r = real_rename(from, to);
  after_create(r != 0, AT_FDCWD, to);
  return r;
}

int renameat(int fromfd, const char* from, int tofd, const char* to) {
  REAL(renameat);
  int r = real_renameat(fromfd, from, tofd, to);
  after_create(r != 0, tofd, to);
  return r;
}

int renameat2(int fromfd, const char* from, int tofd, const char* to, unsigned flags) {
  REAL(renameat2);
  int r = real_renameat2(fromfd, from, tofd, to, flags);
  after_create(r != 0, tofd, to);
  return r;
}

int mkdir(const char* path, mode_t mode) {
  REAL(mkdir);
  int r = real_mkdir(path, mode);
  after_create(r != 0, AT_FDCWD, path);
  return r;
}

struct tm* localtime(const time_t* t) {
  REAL(localtime);
  int saved = errno;
  emit('T', "");
  errno = saved;
  return real_localtime(t);
}

struct tm* localtime_r(const time_t* t, struct tm* out) {
  REAL(localtime_r);
  int saved = errno;
  emit('T', "");
  errno = saved;
  return real_localtime_r(t, out);
}
