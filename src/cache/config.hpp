#pragma once

#include <string>

#include "kiln/config/registry.hpp"
#include "kiln/config/values.hpp"
#include "kiln/storage/storage_settings.hpp"

namespace kiln::cache {

// The effective configuration of one kiln invocation. Built once in main()
// from the typed values of the configuration registry (make_config) and passed
// down; nothing below reads the environment for settings. Every key is
// declared once, by the component that owns it (register_settings here and in
// storage), and documented in docs/configuration.md.
struct Config {
  std::string cache_dir;  // storage's key: the cache keeps its statistics and probes there too
  bool disable = false;
  std::string base_dir;  // absolute and normalized, or empty
  bool direct_mode = true;
  bool depend_mode = true;
  bool hash_dir = true;
  bool read_only = false;
  bool recache = false;
  int inflight_wait_s = 0;  // 0: a miss never waits for another process's compile
  bool stats = true;
  int compression_level = 1;
  std::string file_link = "copy";  // copy | hardlink | reflink
  std::string log_file;

  storage::StorageSettings storage;  // the local store and the remote levels

  std::string config_path;  // the file that was (or would be) read
  config::Values values;    // every key with its origin, for `kiln -p`
};

// Declares the cache's keys (section "general") in `registry`.
void register_settings(config::Registry& registry);

// The configuration from `values`, which must hold the keys of
// register_settings and of storage::register_settings.
Config make_config(config::Values values, std::string config_path);

// The configuration file's path: $KILN_CONFIG, else
// $XDG_CONFIG_HOME/kiln/kiln.toml, else ~/.config/kiln/kiln.toml.
std::string default_config_path();

}  // namespace kiln::cache
