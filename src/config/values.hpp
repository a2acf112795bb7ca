#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kiln/config/key_decl.hpp"
#include "kiln/config/origin.hpp"
#include "kiln/config/registry.hpp"

namespace kiln::config {

// The typed value of every declared key and where it came from. Made by
// load() (or, with defaults only, by the constructor) and then read by each
// component to build its own settings. `*registry` must outlive it.
//
// The getters take a declared key of the matching type; anything else is a
// programming error and throws std::logic_error.
class Values {
 public:
  Values() = default;
  // Every key at its default.
  Values(const Registry& registry, const Getenv& getenv);

  bool get_bool(std::string_view key) const;
  int64_t get_int(std::string_view key) const;                // integer and size keys
  const std::string& get_string(std::string_view key) const;  // string and choice keys
  const std::vector<std::string>& get_list(std::string_view key) const;

  Origin origin(std::string_view key) const;
  // As `kiln -p` prints it (display_value).
  std::string display(std::string_view key) const;

  void set(std::string_view key, Value value, Origin origin);

  const Registry* registry() const { return m_registry; }

 private:
  struct Entry {
    Value value;
    Origin origin = Origin::default_value;
  };
  size_t index(std::string_view key) const;
  const Entry& entry(std::string_view key) const { return m_entries[index(key)]; }

  const Registry* m_registry = nullptr;
  std::vector<Entry> m_entries;  // by the key's Registry::index_of
};

}  // namespace kiln::config
