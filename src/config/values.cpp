#include "kiln/config/values.hpp"

#include <stdexcept>

#include "kiln/config/value.hpp"

namespace kiln::config {

Values::Values(const Registry& registry, const Getenv& getenv) : m_registry(&registry) {
  m_entries.reserve(registry.size());
  for (size_t i = 0; i < registry.size(); ++i) {
    const KeyDecl& decl = registry.at(i);
    std::string text = decl.dynamic_default ? decl.dynamic_default(getenv) : decl.default_text;
    auto v = parse_value(decl, text);
    if (!v) {
      // Registry::add checked the static defaults; a computed one that does
      // not parse is a bug of its declaration.
      throw std::logic_error("configuration key \"" + decl.name + "\": bad default: " + v.error());
    }
    m_entries.push_back(Entry{std::move(*v), Origin::default_value});
  }
}

size_t Values::index(std::string_view key) const {
  size_t i = m_registry ? m_registry->index_of(key) : 0;
  if (i >= m_entries.size()) {
    throw std::logic_error("configuration key \"" + std::string(key) + "\" is not declared");
  }
  return i;
}

namespace {
template <typename T>
const T& typed(const Value& v, std::string_view key) {
  if (const T* t = std::get_if<T>(&v)) {
    return *t;
  }
  throw std::logic_error("configuration key \"" + std::string(key) + "\" read as the wrong type");
}
}  // namespace

bool Values::get_bool(std::string_view key) const {
  return typed<bool>(entry(key).value, key);
}

int64_t Values::get_int(std::string_view key) const {
  return typed<int64_t>(entry(key).value, key);
}

const std::string& Values::get_string(std::string_view key) const {
  return typed<std::string>(entry(key).value, key);
}

const std::vector<std::string>& Values::get_list(std::string_view key) const {
  return typed<std::vector<std::string>>(entry(key).value, key);
}

Origin Values::origin(std::string_view key) const {
  return entry(key).origin;
}

std::string Values::display(std::string_view key) const {
  size_t i = index(key);
  return display_value(m_registry->at(i), m_entries[i].value);
}

void Values::set(std::string_view key, Value value, Origin origin) {
  Entry& e = m_entries[index(key)];
  if (e.value.index() != value.index()) {
    throw std::logic_error("configuration key \"" + std::string(key) +
                           "\" set to a value of the wrong type");
  }
  e = Entry{std::move(value), origin};
}

}  // namespace kiln::config
