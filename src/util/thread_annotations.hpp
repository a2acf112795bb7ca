#pragma once

// Clang's thread-safety analysis (-Wthread-safety): shared state says which
// mutex guards it, and the compiler checks every access. The macros are empty
// for other compilers. libstdc++'s std::mutex carries no annotations, so
// guarded code uses util::Mutex and util::MutexLock below.

#include <mutex>

#if defined(__clang__)
#define KILN_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define KILN_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) KILN_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY KILN_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) KILN_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) KILN_THREAD_ANNOTATION(pt_guarded_by(x))
#define REQUIRES(...) KILN_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) KILN_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) KILN_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define RELEASE(...) KILN_THREAD_ANNOTATION(release_capability(__VA_ARGS__))

namespace kiln::util {

// std::mutex with the annotations the analysis needs.
class CAPABILITY("mutex") Mutex {
 public:
  void lock() ACQUIRE() { m_mutex.lock(); }
  void unlock() RELEASE() { m_mutex.unlock(); }

 private:
  std::mutex m_mutex;
};

// Holds a Mutex for the scope (std::lock_guard, annotated).
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& m) ACQUIRE(m) : m_mutex(m) { m_mutex.lock(); }
  ~MutexLock() RELEASE() { m_mutex.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& m_mutex;
};

}  // namespace kiln::util
