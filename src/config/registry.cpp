#include "kiln/config/registry.hpp"

#include <algorithm>
#include <stdexcept>

#include "kiln/config/value.hpp"

namespace kiln::config {

void Registry::add(KeyDecl decl) {
  for (const auto& k : m_decls) {
    if (k.name == decl.name || (!decl.env.empty() && k.env == decl.env)) {
      throw std::logic_error("configuration key \"" + decl.name + "\" declared twice (by " +
                             std::string(k.component) + " and " + std::string(decl.component) +
                             ")");
    }
  }
  if (!decl.dynamic_default) {
    if (auto v = parse_value(decl, decl.default_text); !v) {
      throw std::logic_error("configuration key \"" + decl.name + "\": bad default: " + v.error());
    }
  }
  // After the last key of its section, so each section stays together; a new
  // section goes last.
  auto last = std::find_if(m_order.rbegin(), m_order.rend(),
                           [&](size_t i) { return m_decls[i].section == decl.section; });
  auto at = last == m_order.rend() ? m_order.end() : last.base();
  m_order.insert(at, m_decls.size());
  m_decls.push_back(std::move(decl));
}

const KeyDecl* Registry::find(std::string_view name) const {
  size_t i = index_of(name);
  return i < m_decls.size() ? &m_decls[i] : nullptr;
}

size_t Registry::index_of(std::string_view name) const {
  for (size_t i = 0; i < m_decls.size(); ++i) {
    if (m_decls[i].name == name) {
      return i;
    }
  }
  return m_decls.size();
}

std::vector<std::string> Registry::sections() const {
  std::vector<std::string> out;
  for (const auto& k : keys()) {
    if (std::find(out.begin(), out.end(), k.section) == out.end()) {
      out.emplace_back(k.section);
    }
  }
  return out;
}

}  // namespace kiln::config
