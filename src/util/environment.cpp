#include "kiln/util/environment.hpp"

extern char** environ;

namespace kiln::util {

namespace {

std::string_view name_of(std::string_view entry) {
  return entry.substr(0, entry.find('='));
}

}  // namespace

Environment::Environment(std::vector<std::string> entries) : m_entries(std::move(entries)) {}

Environment Environment::of_process() {
  std::vector<std::string> entries;
  for (char** e = environ; e && *e; ++e) {
    entries.emplace_back(*e);
  }
  return Environment(std::move(entries));
}

std::optional<std::string_view> Environment::get(std::string_view name) const {
  for (const auto& entry : m_entries) {
    if (entry.size() > name.size() && entry[name.size()] == '=' && entry.starts_with(name)) {
      return std::string_view(entry).substr(name.size() + 1);
    }
  }
  return std::nullopt;
}

std::string_view Environment::get_or(std::string_view name, std::string_view fallback) const {
  auto v = get(name);
  return v && !v->empty() ? *v : fallback;
}

Environment Environment::with(const std::vector<std::string>& overrides) const {
  std::vector<std::string> out;
  out.reserve(m_entries.size() + overrides.size());
  for (const auto& entry : m_entries) {
    bool replaced = false;
    for (const auto& o : overrides) {
      if (o.find('=') != std::string::npos && name_of(o) == name_of(entry)) {
        replaced = true;
        break;
      }
    }
    if (!replaced) {
      out.push_back(entry);
    }
  }
  out.insert(out.end(), overrides.begin(), overrides.end());
  return Environment(std::move(out));
}

}  // namespace kiln::util
