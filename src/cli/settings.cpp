#include "kiln/cli/settings.hpp"

#include "kiln/dist/settings.hpp"
#include "kiln/storage/storage_settings.hpp"

namespace kiln::cli {

const config::Registry& registry() {
  static const config::Registry r = [] {
    config::Registry r;
    storage::register_settings(r);
    cache::register_settings(r);
    dist::register_settings(r);
    return r;
  }();
  return r;
}

LoadedConfig load_config(const config::Getenv& getenv) {
  std::string path = cache::default_config_path();
  config::Loaded loaded = config::load(registry(), path, getenv);
  return {cache::make_config(std::move(loaded.values), std::move(path)), std::move(loaded.errors)};
}

expected<void, config::Error> set_config_value(const std::string& path, std::string_view key,
                                               std::string_view value) {
  return config::set_in_file(registry(), path, key, value);
}

std::string describe(const std::vector<config::Error>& errors) {
  if (errors.empty()) {
    return "";
  }
  std::string out = config::to_string(errors.front());
  if (errors.size() > 1) {
    out += " (and " + std::to_string(errors.size() - 1) + " more)";
  }
  return out;
}

}  // namespace kiln::cli
