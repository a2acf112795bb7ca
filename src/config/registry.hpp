#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kiln/config/key_decl.hpp"

namespace kiln::config {

// The declared keys of one program. Each component adds its own with an
// explicit call (storage::register_settings, cache::register_settings, ...);
// the binary composes them. Not thread-safe while keys are added; read-only
// afterwards, and it must outlive every Values made from it.
class Registry {
 public:
  // Adds a key. Throws std::logic_error for a second key of the same name or
  // variable, or a default that does not parse: programming errors, which
  // any test that builds the registry catches.
  void add(KeyDecl decl);

  // nullptr if no such key is declared.
  const KeyDecl* find(std::string_view name) const;

  // Every key in documentation order: sections in the order they first
  // appeared, keys in the order they were declared within their section.
  const std::vector<KeyDecl>& keys() const { return m_keys; }

  // Section names in documentation order.
  std::vector<std::string> sections() const;

 private:
  std::vector<KeyDecl> m_keys;
};

}  // namespace kiln::config
