#pragma once

#include <cstddef>
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
  // The keys in documentation order, as `const KeyDecl&`.
  class KeyRange {
   public:
    class iterator {
     public:
      iterator(const Registry* r, std::vector<size_t>::const_iterator at) : m_r(r), m_at(at) {}
      const KeyDecl& operator*() const { return m_r->m_decls[*m_at]; }
      const KeyDecl* operator->() const { return &**this; }
      iterator& operator++() {
        ++m_at;
        return *this;
      }
      bool operator==(const iterator& o) const { return m_at == o.m_at; }

     private:
      const Registry* m_r;
      std::vector<size_t>::const_iterator m_at;
    };
    explicit KeyRange(const Registry* r) : m_r(r) {}
    iterator begin() const { return {m_r, m_r->m_order.begin()}; }
    iterator end() const { return {m_r, m_r->m_order.end()}; }
    size_t size() const { return m_r->m_order.size(); }

   private:
    const Registry* m_r;
  };

  Registry() { m_decls.reserve(64); }
  // Values refer to the registry: move it only before any are made.
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  Registry(Registry&&) = default;
  Registry& operator=(Registry&&) = default;

  // Adds a key. Throws std::logic_error for a second key of the same name or
  // variable, or a default that does not parse: programming errors, which
  // any test that builds the registry catches.
  void add(KeyDecl decl);

  // nullptr if no such key is declared.
  const KeyDecl* find(std::string_view name) const;
  // The key's position in declaration order (index()), or size() if there is none.
  size_t index_of(std::string_view name) const;
  // The key declared index-th, 0-based.
  const KeyDecl& at(size_t index) const { return m_decls[index]; }
  size_t size() const { return m_decls.size(); }

  // Every key in documentation order: sections in the order they first
  // appeared, keys in the order they were declared within their section.
  KeyRange keys() const { return KeyRange(this); }

  // Section names in documentation order.
  std::vector<std::string> sections() const;

 private:
  std::vector<KeyDecl> m_decls;  // in declaration order
  std::vector<size_t> m_order;   // indices into m_decls, in documentation order
};

}  // namespace kiln::config
