#include "kiln/config/values.hpp"

#include <stdexcept>

#include "kiln/config/value.hpp"

namespace kiln::config {

Values::Values(const Registry& registry, const Getenv& getenv) : m_registry(&registry) {
  for (const auto& decl : registry.keys()) {
    std::string text = decl.dynamic_default ? decl.dynamic_default(getenv) : decl.default_text;
    auto v = parse_value(decl, text);
    if (!v) {
      // Registry::add checked the static defaults; a computed one that does
      // not parse is a bug of its declaration.
      throw std::logic_error("configuration key \"" + decl.name + "\": bad default: " + v.error());
    }
    m_entries[decl.name] = Entry{std::move(*v), Origin::default_value};
  }
}

const Values::Entry& Values::entry(std::string_view key) const {
  auto it = m_entries.find(key);
  if (it == m_entries.end()) {
    throw std::logic_error("configuration key \"" + std::string(key) + "\" is not declared");
  }
  return it->second;
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
  return display_value(*m_registry->find(key), entry(key).value);
}

void Values::set(std::string_view key, Value value, Origin origin) {
  auto it = m_entries.find(key);
  if (it == m_entries.end() || it->second.value.index() != value.index()) {
    throw std::logic_error("configuration key \"" + std::string(key) +
                           "\" set to a value of the wrong type");
  }
  it->second = Entry{std::move(value), origin};
}

}  // namespace kiln::config
