#include "kiln/config/registry.hpp"

#include <algorithm>
#include <stdexcept>

#include "kiln/config/value.hpp"

namespace kiln::config {

void Registry::add(KeyDecl decl) {
  for (const auto& k : m_keys) {
    if (k.name == decl.name || (!decl.env.empty() && k.env == decl.env)) {
      throw std::logic_error("configuration key \"" + decl.name + "\" declared twice (by " +
                             k.component + " and " + decl.component + ")");
    }
  }
  if (!decl.dynamic_default) {
    if (auto v = parse_value(decl, decl.default_text); !v) {
      throw std::logic_error("configuration key \"" + decl.name + "\": bad default: " + v.error());
    }
  }
  // After the last key of its section, so each section stays together; a new
  // section goes last.
  auto last = std::find_if(m_keys.rbegin(), m_keys.rend(),
                           [&](const KeyDecl& k) { return k.section == decl.section; });
  auto at = last == m_keys.rend() ? m_keys.end() : last.base();
  m_keys.insert(at, std::move(decl));
}

const KeyDecl* Registry::find(std::string_view name) const {
  for (const auto& k : m_keys) {
    if (k.name == name) {
      return &k;
    }
  }
  return nullptr;
}

std::vector<std::string> Registry::sections() const {
  std::vector<std::string> out;
  for (const auto& k : m_keys) {
    if (std::find(out.begin(), out.end(), k.section) == out.end()) {
      out.push_back(k.section);
    }
  }
  return out;
}

}  // namespace kiln::config
