// The remote-storage plugins: the remote backends behind the C boundary of plugin_abi.h.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "kiln/storage/plugin_abi.h"
#include "kiln/storage/remote_settings_text.hpp"

// Built three times from one library (src/storage/remote/CMakeLists.txt):
// libkiln-redis.so with only the Redis backend (hiredis), libkiln-remote.so
// with S3 and HTTP (libcurl), and libkiln-http.so with HTTP over the socket
// transport (http:// only), so that a Redis or plain-HTTP level never loads
// libcurl and its ~30 libraries. The HTTP plugins differ only by the transport
// factory handed to HttpStorage: what a plugin does not call, the static
// archive does not link.
#ifdef KILN_PLUGIN_REDIS
#include "kiln/storage/remote/redis_storage.hpp"
#endif
#ifdef KILN_PLUGIN_CURL
#include "kiln/net/curl_client.hpp"
#include "kiln/storage/remote/http_storage.hpp"
#include "kiln/storage/remote/s3_storage.hpp"
#endif
#ifdef KILN_PLUGIN_HTTP
#include "kiln/net/plain_client.hpp"
#include "kiln/storage/remote/http_storage.hpp"
#endif

namespace {

using kiln::storage::Error;
using kiln::storage::Failure;
using kiln::storage::Key;
using kiln::storage::Storage;

struct Handle {
  std::unique_ptr<Storage> storage;
  Error error;
};

int status_of(Failure f) {
  return static_cast<int>(f) + 1;
}

void* open_remote(const char* kind, const char* settings, size_t len) {
  std::string_view text(settings, len);
  std::string k = kind;
  auto h = std::make_unique<Handle>();
  try {
#ifdef KILN_PLUGIN_CURL
    if (k == "s3") {
      h->storage =
          std::make_unique<kiln::storage::S3Storage>(kiln::storage::s3_settings_from_text(text));
    } else if (k == "http") {
      auto s = kiln::storage::http_settings_from_text(text);
      auto client = kiln::net::make_curl_client(kiln::storage::HttpStorage::client_timeouts(s));
      h->storage = std::make_unique<kiln::storage::HttpStorage>(std::move(s), std::move(client));
    }
#endif
#ifdef KILN_PLUGIN_HTTP
    if (k == "http") {
      auto s = kiln::storage::http_settings_from_text(text);
      auto client = kiln::net::make_plain_client(kiln::storage::HttpStorage::client_timeouts(s));
      h->storage = std::make_unique<kiln::storage::HttpStorage>(std::move(s), std::move(client));
    }
#endif
#ifdef KILN_PLUGIN_REDIS
    if (k == "redis") {
      h->storage = std::make_unique<kiln::storage::RedisStorage>(
          kiln::storage::redis_settings_from_text(text));
    }
#endif
    if (!h->storage) {
      return nullptr;
    }
  } catch (...) {
    return nullptr;
  }
  return h.release();
}

// Runs `f` on the handle's storage, turning exceptions into KILN_REMOTE_ERROR
// and remembering the storage's message for a failure.
template <typename F>
int guarded(void* handle, const char* key_name, F&& f) {
  auto* h = static_cast<Handle*>(handle);
  auto key = Key::parse(key_name ? key_name : "");
  if (!key) {
    h->error = Error::plain(Failure::error, "invalid key name");
    return KILN_REMOTE_ERROR;
  }
  try {
    int status = f(*h->storage, *key);
    if (status != KILN_REMOTE_OK && status != KILN_REMOTE_NOT_FOUND) {
      h->error = h->storage->last_problem();
    }
    return status;
  } catch (const std::exception& e) {
    h->error = Error::plain(Failure::error, e.what());
  } catch (...) {
    h->error = Error::plain(Failure::error, "unknown error in the remote-storage plugin");
  }
  return KILN_REMOTE_ERROR;
}

int get_remote(void* handle, const char* key, kiln_remote_sink sink, void* context) {
  return guarded(handle, key, [&](Storage& s, const Key& k) {
    auto r =
        s.get_to(k, [&](std::string_view piece) { sink(context, piece.data(), piece.size()); });
    return r ? static_cast<int>(KILN_REMOTE_OK) : status_of(r.error());
  });
}

int put_remote(void* handle, const char* key, const char* data, size_t len) {
  return guarded(handle, key, [&](Storage& s, const Key& k) {
    auto r = s.put(k, std::string_view(data, len));
    return r ? static_cast<int>(KILN_REMOTE_OK) : status_of(r.error());
  });
}

int exists_remote(void* handle, const char* key, int* found) {
  return guarded(handle, key, [&](Storage& s, const Key& k) {
    auto r = s.exists(k);
    if (!r) {
      return status_of(r.error());
    }
    *found = *r ? 1 : 0;
    return static_cast<int>(KILN_REMOTE_OK);
  });
}

int remove_remote(void* handle, const char* key) {
  return guarded(handle, key, [&](Storage& s, const Key& k) {
    auto r = s.remove(k);
    return r ? static_cast<int>(KILN_REMOTE_OK) : status_of(r.error());
  });
}

int lease_acquire_remote(void* handle, const char* key, const char* holder, size_t holder_len,
                         long long ttl_ms, int* taken) {
  return guarded(handle, key, [&](Storage& s, const Key& k) {
    auto r =
        s.acquire_lease(k, std::string_view(holder, holder_len), std::chrono::milliseconds(ttl_ms));
    if (!r) {
      return status_of(r.error());
    }
    *taken = *r ? 1 : 0;
    return static_cast<int>(KILN_REMOTE_OK);
  });
}

int lease_release_remote(void* handle, const char* key, const char* holder, size_t holder_len) {
  return guarded(handle, key, [&](Storage& s, const Key& k) {
    auto r = s.release_lease(k, std::string_view(holder, holder_len));
    return r ? static_cast<int>(KILN_REMOTE_OK) : status_of(r.error());
  });
}

int lease_held_remote(void* handle, const char* key, int* held) {
  return guarded(handle, key, [&](Storage& s, const Key& k) {
    auto r = s.lease_held(k);
    if (!r) {
      return status_of(r.error());
    }
    *held = *r ? 1 : 0;
    return static_cast<int>(KILN_REMOTE_OK);
  });
}

void last_error_remote(void* handle, kiln_remote_error* out) {
  const Error& e = static_cast<Handle*>(handle)->error;
  out->message = e.message.c_str();
  out->key = e.key.c_str();
  out->key_at = e.key_at == std::string::npos ? KILN_REMOTE_NO_KEY : e.key_at;
}

void close_remote(void* handle) {
  delete static_cast<Handle*>(handle);
}

const kiln_remote_api k_api = {
    KILN_REMOTE_ABI_VERSION, open_remote,          get_remote,        put_remote,
    exists_remote,           remove_remote,        last_error_remote, close_remote,
    lease_acquire_remote,    lease_release_remote, lease_held_remote,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const kiln_remote_api* kiln_remote_plugin_api(
    void) {
  return &k_api;
}
