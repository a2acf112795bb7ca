#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace kiln::config {

// What kind of value a key takes, and so how its text is parsed.
enum class Type {
  boolean,  // true/false, 1/0, yes/no, on/off; empty is false
  integer,  // decimal, within [min, max]
  size,     // bytes, with K, M, G, T suffixes (powers of 1024), within [min, max]
  string,   // any text
  choice,   // one of `choices`
  list,     // comma-separated; each element one of `choices` when given
};

// A parsed value: bool (boolean), int64_t (integer, size), std::string
// (string, choice), std::vector<std::string> (list).
using Value = std::variant<bool, int64_t, std::string, std::vector<std::string>>;

// How `kiln -p` shows a value that may hold a secret.
enum class Redact {
  none,
  secret,        // "(set)" or empty
  url_password,  // scheme://user:***@host
};

// Reads an environment variable (nullptr when unset); tests inject their own.
using Getenv = std::function<const char*(const char*)>;

// One configuration key, declared once by the component that owns it. The
// declaration is the whole truth about the key: how it is read from the file,
// the environment and `kiln -o`, how `kiln -p` prints it, and its row in
// docs/configuration.md. Declarations read as one table row each:
//
//   KeyDecl("remote_backoff", "KILN_REMOTE_BACKOFF", Type::integer, "30",
//           "after a level times out, ...").between(0, 86400).counting("seconds")
struct KeyDecl {
  // The text fields that are string_views (doc, doc_default, section,
  // component, unit) must refer to static storage: string literals.
  KeyDecl(std::string name, std::string env, Type type, std::string default_text,
          std::string_view doc)
      : name(std::move(name)),
        env(std::move(env)),
        type(type),
        default_text(std::move(default_text)),
        doc(doc) {}

  std::string name;  // in the TOML file and for `kiln -o name=value`
  std::string env;   // environment variable, KILN_*
  Type type = Type::string;
  std::string default_text;    // parsed like any other value; must be valid
  std::string_view doc;        // one line of markdown: the table's "meaning"
  std::string_view section;    // the documentation table the key is listed in
  std::string_view component;  // who declared it ("storage", "cache", ...)
  // Markdown for the table's default column when default_text alone does not
  // say it (a computed default, or one a backend fills in).
  std::string_view doc_default;
  int64_t min = std::numeric_limits<int64_t>::min();  // integer and size
  int64_t max = std::numeric_limits<int64_t>::max();
  std::string_view unit;             // integer: what the number counts ("seconds")
  std::vector<std::string> choices;  // choice: the values; list: each element
  // Computed at load time instead of default_text (e.g. from $XDG_CACHE_HOME).
  std::function<std::string(const Getenv&)> dynamic_default;
  // Further validation after the type's own; may normalize the value in place.
  // Returns why the value is bad, or nullopt.
  std::function<std::optional<std::string>(Value&)> check;
  Redact redact = Redact::none;

  // Setters for the declaration's expression; each returns the declaration.
  KeyDecl&& in_section(std::string_view s) && {
    section = s;
    return std::move(*this);
  }
  KeyDecl&& owned_by(std::string_view c) && {
    component = c;
    return std::move(*this);
  }
  KeyDecl&& doc_default_is(std::string_view markdown) && {
    doc_default = markdown;
    return std::move(*this);
  }
  KeyDecl&& between(int64_t lo, int64_t hi) && {
    min = lo;
    max = hi;
    return std::move(*this);
  }
  KeyDecl&& at_least(int64_t lo) && {
    min = lo;
    return std::move(*this);
  }
  KeyDecl&& counting(std::string_view what) && {
    unit = what;
    return std::move(*this);
  }
  KeyDecl&& one_of(std::vector<std::string> values) && {
    choices = std::move(values);
    return std::move(*this);
  }
  KeyDecl&& computed_by(std::function<std::string(const Getenv&)> f) && {
    dynamic_default = std::move(f);
    return std::move(*this);
  }
  KeyDecl&& checked_by(std::function<std::optional<std::string>(Value&)> f) && {
    check = std::move(f);
    return std::move(*this);
  }
  KeyDecl&& redacted(Redact r) && {
    redact = r;
    return std::move(*this);
  }
};

}  // namespace kiln::config
