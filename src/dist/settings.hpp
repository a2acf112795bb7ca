#pragma once

#include <string>

#include "kiln/config/registry.hpp"
#include "kiln/config/values.hpp"

namespace kiln::dist {

// The client's cluster settings (docs/configuration.md, "dist"): with a
// scheduler URL, a cache miss is compiled on the cluster.
struct DistSettings {
  std::string scheduler_url;  // empty: compile locally
  std::string token;          // the client token, or the path of a file holding it
  std::string scheduler_ca;   // PEM file to trust for an https scheduler
  bool fallback_to_local = true;
  int retry_limit = 3;
  int scheduler_wait_s = 10;
  bool enabled() const { return !scheduler_url.empty(); }
};

// Declares the keys (section "dist", names "dist.<key>"; in the TOML file
// a [dist] table).
void register_settings(config::Registry& registry);
DistSettings dist_settings(const config::Values& values);

}  // namespace kiln::dist
