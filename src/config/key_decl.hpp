#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
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
  KeyDecl(std::string name, std::string env, Type type, std::string default_text, std::string doc)
      : name(std::move(name)),
        env(std::move(env)),
        type(type),
        default_text(std::move(default_text)),
        doc(std::move(doc)) {}

  std::string name;  // in the TOML file and for `kiln -o name=value`
  std::string env;   // environment variable, KILN_*
  Type type = Type::string;
  std::string default_text;  // parsed like any other value; must be valid
  std::string doc;           // one line of markdown: the table's "meaning"
  std::string section;       // the documentation table the key is listed in
  std::string component;     // who declared it ("storage", "cache", ...)
  // Markdown for the table's default column when default_text alone does not
  // say it (a computed default, or one a backend fills in).
  std::string doc_default;
  int64_t min = std::numeric_limits<int64_t>::min();  // integer and size
  int64_t max = std::numeric_limits<int64_t>::max();
  std::string unit;                  // integer: what the number counts ("seconds")
  std::vector<std::string> choices;  // choice: the values; list: each element
  // Computed at load time instead of default_text (e.g. from $XDG_CACHE_HOME).
  std::function<std::string(const Getenv&)> dynamic_default;
  // Further validation after the type's own; may normalize the value in place.
  // Returns why the value is bad, or nullopt.
  std::function<std::optional<std::string>(Value&)> check;
  Redact redact = Redact::none;

  KeyDecl& in_section(std::string s) {
    section = std::move(s);
    return *this;
  }
  KeyDecl& owned_by(std::string c) {
    component = std::move(c);
    return *this;
  }
  KeyDecl& doc_default_is(std::string markdown) {
    doc_default = std::move(markdown);
    return *this;
  }
  KeyDecl& between(int64_t lo, int64_t hi) {
    min = lo;
    max = hi;
    return *this;
  }
  KeyDecl& at_least(int64_t lo) {
    min = lo;
    return *this;
  }
  KeyDecl& counting(std::string what) {
    unit = std::move(what);
    return *this;
  }
  KeyDecl& one_of(std::vector<std::string> values) {
    choices = std::move(values);
    return *this;
  }
  KeyDecl& computed_by(std::function<std::string(const Getenv&)> f) {
    dynamic_default = std::move(f);
    return *this;
  }
  KeyDecl& checked_by(std::function<std::optional<std::string>(Value&)> f) {
    check = std::move(f);
    return *this;
  }
  KeyDecl& redacted(Redact r) {
    redact = r;
    return *this;
  }
};

}  // namespace kiln::config
