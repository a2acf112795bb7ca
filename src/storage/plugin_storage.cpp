#include "kiln/storage/plugin_storage.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <map>

#include "kiln/storage/plugin_abi.h"
#include "kiln/storage/remote_settings_text.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/path.hpp"
#include "kiln/util/string.hpp"
#include "kiln/util/thread_annotations.hpp"

namespace kiln::storage {

namespace {

// A Storage whose calls go through the plugin's C functions.
class PluginStorage : public Storage {
 public:
  PluginStorage(const kiln_remote_api* api, void* handle, std::string name)
      : m_api(api), m_handle(handle), m_name(std::move(name)) {}
  ~PluginStorage() override { m_api->close(m_handle); }

  std::string_view name() const override { return m_name; }

  expected<std::string, Failure> get(const Key& key) override {
    std::string out;
    int status = m_api->get(
        m_handle, key.name().c_str(),
        [](void* context, const char* data, size_t len) {
          static_cast<std::string*>(context)->append(data, len);
        },
        &out);
    if (status != KILN_REMOTE_OK) {
      return unexpected(failure(status));
    }
    return out;
  }

  expected<void, Failure> put(const Key& key, std::string_view value) override {
    int status = m_api->put(m_handle, key.name().c_str(), value.data(), value.size());
    if (status != KILN_REMOTE_OK) {
      return unexpected(failure(status));
    }
    return {};
  }

  expected<void, Failure> remove(const Key& key) override {
    int status = m_api->remove(m_handle, key.name().c_str());
    if (status != KILN_REMOTE_OK) {
      return unexpected(failure(status));
    }
    return {};
  }

  expected<bool, Failure> exists(const Key& key) override {
    int found = 0;
    int status = m_api->exists(m_handle, key.name().c_str(), &found);
    if (status != KILN_REMOTE_OK) {
      return unexpected(failure(status));
    }
    return found != 0;
  }

  // Through the plugin's lease functions (ABI version 4); of the remote
  // kinds, S3 and Redis can hold leases, HTTP cannot.
  expected<bool, Failure> acquire_lease(const Key& key, std::string_view holder,
                                        std::chrono::milliseconds ttl) override {
    int taken = 0;
    int status = m_api->lease_acquire(m_handle, key.name().c_str(), holder.data(), holder.size(),
                                      static_cast<long long>(ttl.count()), &taken);
    if (status != KILN_REMOTE_OK) {
      return unexpected(failure(status));
    }
    return taken != 0;
  }

  expected<void, Failure> release_lease(const Key& key, std::string_view holder) override {
    int status = m_api->lease_release(m_handle, key.name().c_str(), holder.data(), holder.size());
    if (status != KILN_REMOTE_OK) {
      return unexpected(failure(status));
    }
    return {};
  }

  expected<bool, Failure> lease_held(const Key& key) override {
    int held = 0;
    int status = m_api->lease_held(m_handle, key.name().c_str(), &held);
    if (status != KILN_REMOTE_OK) {
      return unexpected(failure(status));
    }
    return held != 0;
  }

  bool supports_leases() const override { return m_name == "s3" || m_name == "redis"; }

  Error last_problem() const override { return m_last_error; }

 private:
  Failure failure(int status) {
    Failure f = Failure::error;
    switch (status) {
      case KILN_REMOTE_NOT_FOUND:
        return Failure::not_found;
      case KILN_REMOTE_TIMEOUT:
        f = Failure::timeout;
        break;
      case KILN_REMOTE_ACCESS_DENIED:
        f = Failure::access_denied;
        break;
      default:
        break;
    }
    kiln_remote_error e{nullptr, nullptr, KILN_REMOTE_NO_KEY};
    m_api->last_error(m_handle, &e);
    m_last_error = Error::plain(f, e.message ? e.message : "");
    if (e.key_at != KILN_REMOTE_NO_KEY && e.key_at <= m_last_error.message.size()) {
      m_last_error.key = e.key ? e.key : "";
      m_last_error.key_at = e.key_at;
    }
    return f;
  }

  const kiln_remote_api* m_api;
  void* m_handle;
  std::string m_name;
  Error m_last_error;
};

// The plugins loaded by this process, per plugin file: each is opened once and
// stays loaded. Daemons open levels from many threads.
struct PluginRegistry {
  struct Loaded {
    const kiln_remote_api* api = nullptr;
    std::string error;
  };
  util::Mutex mutex;
  std::map<std::string, Loaded> loaded GUARDED_BY(mutex);
};

PluginRegistry& plugin_registry() {
  static PluginRegistry registry;
  return registry;
}

const kiln_remote_api* load_api(const std::string& path, std::string* error) {
  PluginRegistry& registry = plugin_registry();
  util::MutexLock lock(registry.mutex);
  auto [it, first] = registry.loaded.try_emplace(path);
  const kiln_remote_api*& api = it->second.api;
  std::string& load_error = it->second.error;
  if (first) {
    // RTLD_LAZY: symbols of libcurl's dependencies are bound when used, not
    // all at load (about 2 ms less per compilation that reaches a remote).
    void* lib = ::dlopen(path.c_str(), RTLD_LAZY | RTLD_LOCAL);
    if (!lib) {
      const char* e = ::dlerror();
      load_error = "cannot load the remote-storage plugin " + path + ": " + (e ? e : "?") +
                   " (set KILN_REMOTE_PLUGIN to the directory of the kiln plugins)";
    } else if (auto entry = reinterpret_cast<const kiln_remote_api* (*)()>(
                   ::dlsym(lib, "kiln_remote_plugin_api"));
               !entry || !entry() || entry()->abi_version != KILN_REMOTE_ABI_VERSION) {
      load_error = path + " is not a kiln remote-storage plugin of this version";
    } else {
      api = entry();
    }
  }
  *error = load_error;
  return api;
}

}  // namespace

std::string default_plugin_dir() {
  std::string dir(util::dir_name(util::real_path("/proc/self/exe")));
  if (util::FileStat::of(dir + "/libkiln-remote.so").exists() ||
      util::FileStat::of(dir + "/libkiln-http.so").exists() ||
      util::FileStat::of(dir + "/libkiln-redis.so").exists()) {
    return dir;
  }
  return util::normalize(dir + "/../lib/kiln");
}

std::string plugin_path_for(std::string_view kind, const std::string& settings,
                            const std::string& dir) {
  if (kind == "redis") {
    return dir + "/libkiln-redis.so";
  }
  if (kind == "http") {
    // libcurl and its ~36 libraries take ~7 ms to load; plain http needs none
    // of them (docs/remote-storage.md).
    std::string scheme = util::lowercase(http_settings_from_text(settings).url.substr(0, 7));
    std::string light = dir + "/libkiln-http.so";
    if (scheme == "http://" && util::FileStat::of(light).exists()) {
      return light;
    }
  }
  return dir + "/libkiln-remote.so";
}

expected<std::unique_ptr<Storage>, std::string> open_remote_storage(std::string_view kind,
                                                                    const std::string& settings,
                                                                    const std::string& plugin_dir) {
  std::string error;
  const kiln_remote_api* api = load_api(plugin_path_for(kind, settings, plugin_dir), &error);
  if (!api) {
    return unexpected(error);
  }
  std::string k(kind);
  void* handle = api->open(k.c_str(), settings.data(), settings.size());
  if (!handle) {
    return unexpected("the remote-storage plugin does not know the backend \"" + k + "\"");
  }
  return std::unique_ptr<Storage>(new PluginStorage(api, handle, k));
}

}  // namespace kiln::storage
