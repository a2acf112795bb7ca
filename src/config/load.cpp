#include "kiln/config/load.hpp"

#include <cstring>
#include <optional>
#include <sstream>

#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "kiln/config/value.hpp"
#include "kiln/util/file.hpp"
#include "kiln/util/path.hpp"
#include "kiln/util/string.hpp"

namespace kiln::config {

namespace {

// The value as text for parse_value; nullopt for TOML types no key takes
// (float, table, date), which are then bad values. An array is a list's
// elements.
std::optional<std::string> toml_value_text(const KeyDecl& decl, const toml::node& node) {
  if (node.is_string()) {
    return *node.value_exact<std::string>();
  }
  if (node.is_boolean()) {
    return *node.value_exact<bool>() ? "true" : "false";
  }
  if (node.is_integer()) {
    return std::to_string(*node.value_exact<int64_t>());
  }
  if (decl.type == Type::list && node.is_array()) {
    std::string out;
    for (const auto& item : *node.as_array()) {
      if (!item.is_string()) {
        return std::nullopt;
      }
      out += (out.empty() ? "" : ",") + *item.value_exact<std::string>();
    }
    return out;
  }
  return std::nullopt;
}

// The parsed file, or an error; a missing file is an empty table.
expected<toml::table, Error> read_table(const std::string& path) {
  if (!util::FileStat::of(path).exists()) {
    return toml::table{};
  }
  auto text = util::read_file(path);
  if (!text) {
    return unexpected(Error{ErrorKind::unreadable_file, Origin::config_file, path, 0, "",
                            std::string("cannot read: ") + std::strerror(text.error())});
  }
  toml::parse_result parsed = toml::parse(*text, path);
  if (!parsed) {
    return unexpected(Error{ErrorKind::syntax, Origin::config_file, path,
                            static_cast<int>(parsed.error().source().begin.line), "",
                            std::string(parsed.error().description())});
  }
  return std::move(parsed.table());
}

void apply_file(const Registry& registry, const std::string& path, Loaded* out) {
  auto table = read_table(path);
  if (!table) {
    out->errors.push_back(table.error());
    return;
  }
  // A key "a.b" may be written `a.b = ...` (quoted or dotted) or in a table
  // `[a]` as `b = ...`: one level of tables is flattened.
  std::vector<std::pair<std::string, const toml::node*>> entries;
  for (auto&& [name, node] : *table) {
    std::string key(name.str());
    if (node.is_table() && !registry.find(key)) {
      for (auto&& [sub, sub_node] : *node.as_table()) {
        entries.emplace_back(key + "." + std::string(sub.str()), &sub_node);
      }
    } else {
      entries.emplace_back(std::move(key), &node);
    }
  }
  for (const auto& [key, node] : entries) {
    const KeyDecl* decl = registry.find(key);
    if (!decl) {
      out->errors.push_back(Error{ErrorKind::unknown_key, Origin::config_file, path, 0, key, ""});
      continue;
    }
    auto text = toml_value_text(*decl, *node);
    if (!text) {
      out->errors.push_back(Error{ErrorKind::bad_value, Origin::config_file, path, 0, key,
                                  "unsupported TOML value type"});
      continue;
    }
    auto v = parse_value(*decl, *text);
    if (!v) {
      out->errors.push_back(
          Error{ErrorKind::bad_value, Origin::config_file, path, 0, key, v.error()});
      continue;
    }
    out->values.set(key, std::move(*v), Origin::config_file);
  }
}

void apply_environment(const Registry& registry, const Getenv& getenv, Loaded* out) {
  for (const auto& decl : registry.keys()) {
    const char* text = decl.env.empty() ? nullptr : getenv(decl.env.c_str());
    if (!text) {
      continue;
    }
    auto v = parse_value(decl, text);
    if (!v) {
      out->errors.push_back(
          Error{ErrorKind::bad_value, Origin::environment, decl.env, 0, decl.name, v.error()});
      continue;
    }
    out->values.set(decl.name, std::move(*v), Origin::environment);
  }
}

}  // namespace

Loaded load(const Registry& registry, const std::string& path, const Getenv& getenv) {
  Loaded out{Values(registry, getenv), {}};
  apply_file(registry, path, &out);
  apply_environment(registry, getenv, &out);
  return out;
}

expected<void, Error> set_in_file(const Registry& registry, const std::string& path,
                                  std::string_view key, std::string_view text) {
  const KeyDecl* decl = registry.find(key);
  if (!decl) {
    return unexpected(
        Error{ErrorKind::unknown_key, Origin::command_line, "", 0, std::string(key), ""});
  }
  auto v = parse_value(*decl, text);
  if (!v) {
    return unexpected(
        Error{ErrorKind::bad_value, Origin::command_line, "", 0, std::string(key), v.error()});
  }
  auto table = read_table(path);
  if (!table) {
    return unexpected(table.error());
  }
  if (const bool* b = std::get_if<bool>(&*v)) {
    table->insert_or_assign(key, *b);
  } else if (decl->type == Type::integer) {
    table->insert_or_assign(key, std::get<int64_t>(*v));
  } else if (decl->type == Type::size) {
    // "10G" reads better than 10737418240 and parses back to the same size.
    table->insert_or_assign(key, std::string(util::trim(text)));
  } else {
    table->insert_or_assign(key, value_text(*decl, *v));
  }
  std::ostringstream out;
  out << *table << "\n";
  auto fail = [&](std::string reason) {
    return unexpected(
        Error{ErrorKind::unreadable_file, Origin::config_file, path, 0, "", std::move(reason)});
  };
  if (auto r = util::make_directories(std::string(util::dir_name(path))); !r) {
    return fail(std::string("cannot create directory: ") + std::strerror(r.error()));
  }
  if (auto r = util::write_file_atomic(path, out.str()); !r) {
    return fail(std::string("cannot write: ") + std::strerror(r.error()));
  }
  return {};
}

}  // namespace kiln::config
