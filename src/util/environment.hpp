#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::util {

// A set of environment variables ("NAME=value" strings), taken once at the
// edge of a program and passed down: the pipeline reads the client's
// environment from here, never from getenv, so that a daemon can run it for
// a client whose environment is not its own. Immutable; thread-safe to share.
class Environment {
 public:
  Environment() = default;
  explicit Environment(std::vector<std::string> entries);

  // A copy of this process's environment, as it is now.
  static Environment of_process();

  // The value of `name`, or nullopt if unset (set to nothing is "").
  std::optional<std::string_view> get(std::string_view name) const;
  bool has(std::string_view name) const { return get(name).has_value(); }
  // The value, or `fallback` when unset or empty.
  std::string_view get_or(std::string_view name, std::string_view fallback) const;

  // This environment with `overrides` ("NAME=value") replacing variables of
  // the same name or added at the end.
  Environment with(const std::vector<std::string>& overrides) const;

  const std::vector<std::string>& entries() const { return m_entries; }

 private:
  std::vector<std::string> m_entries;
};

}  // namespace kiln::util
