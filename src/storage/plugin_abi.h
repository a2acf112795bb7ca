/* The boundary between kiln and its remote-storage plugin (libkiln-remote.so).
 *
 * kiln loads the plugin with dlopen only when a compilation first needs a
 * remote level, so local hits never pay for libcurl, hiredis and their
 * dependencies. Only C types cross this boundary: the plugin and kiln may each
 * carry their own C++ runtime. docs/architecture.md has the reasons.
 */
#ifndef KILN_STORAGE_REMOTE_PLUGIN_ABI_H
#define KILN_STORAGE_REMOTE_PLUGIN_ABI_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_REMOTE_ABI_VERSION 4

/* Status of every call; values match kiln::storage::Failure + 1. */
enum {
  KILN_REMOTE_OK = 0,
  KILN_REMOTE_NOT_FOUND = 1,
  KILN_REMOTE_TIMEOUT = 2,
  KILN_REMOTE_ERROR = 3,
  KILN_REMOTE_ACCESS_DENIED = 4
};

/* Receives a value from get(), in one or more pieces, in order. The bytes are
 * valid only during the call. */
typedef void (*kiln_remote_sink)(void* context, const char* data, size_t len);

/* The last failure (version 3): a sentence for the user that names the entry,
 * if at all, at byte key_at of message (KILN_REMOTE_NO_KEY: it does not), and
 * the entry as the backend names it (a URL path, an object key) in key. */
#define KILN_REMOTE_NO_KEY ((size_t)-1)
struct kiln_remote_error {
  const char* message;
  const char* key;
  size_t key_at;
};

struct kiln_remote_api {
  int abi_version;
  /* kind: "s3", "redis" or "http"; settings: "name=value" lines
   * (settings_text.hpp). Returns NULL for an unknown kind. */
  void* (*open)(const char* kind, const char* settings, size_t settings_len);
  /* key: an entry name, 64 hex digits and 'R' or 'M'. The value goes to
   * sink(context, ...) before get returns; only an OK get calls the sink, and
   * then with the whole value (version 2: no copy of it in the plugin). */
  int (*get)(void* handle, const char* key, kiln_remote_sink sink, void* context);
  int (*put)(void* handle, const char* key, const char* data, size_t len);
  int (*exists)(void* handle, const char* key, int* found);
  int (*remove)(void* handle, const char* key);
  /* Fills *out with the last failure; its strings are valid until the next
   * call. */
  void (*last_error)(void* handle, struct kiln_remote_error* out);
  void (*close)(void* handle);

  /* In-flight leases (version 4; Storage::acquire_lease and the others in
   * storage.hpp). key: a manifest's entry name; holder: holder_len opaque
   * bytes naming the holder. A level that cannot lease (HTTP) answers
   * KILN_REMOTE_ERROR and says so in last_error. */
  /* Takes the lease for ttl_ms milliseconds: *taken is 1 when this call took
   * it (or holder holds it already), 0 when another holder has a live one. */
  int (*lease_acquire)(void* handle, const char* key, const char* holder, size_t holder_len,
                       long long ttl_ms, int* taken);
  /* Ends the lease if holder holds it; otherwise does nothing (and is OK). */
  int (*lease_release)(void* handle, const char* key, const char* holder, size_t holder_len);
  /* *held is 1 when anyone holds a live lease on key, else 0. */
  int (*lease_held)(void* handle, const char* key, int* held);
};

/* The plugin's only exported symbol. */
const struct kiln_remote_api* kiln_remote_plugin_api(void);

#ifdef __cplusplus
}
#endif

#endif
