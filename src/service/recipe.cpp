#include "kiln/service/recipe.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "kiln/util/path.hpp"

namespace kiln::service {

namespace {

struct Recipe {
  std::vector<std::string> sources;
  std::vector<std::string> include_dirs;
  std::vector<std::string> defines;
  std::vector<std::string> flags;
  std::vector<std::string> link_flags;
  std::vector<std::string> libraries;
  std::optional<int64_t> cxx_standard;
  std::optional<int64_t> c_standard;
  bool has_c = false;
  bool has_cxx = false;
};

constexpr std::array k_keys = {"sources",    "include_dirs", "defines",      "flags",
                               "link_flags", "libraries",    "cxx_standard", "c_standard"};

using Check = expected<void, std::string>;

std::string element(std::string_view key, size_t index) {
  return std::string(key) + "[" + std::to_string(index) + "]";
}

bool is_name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '+' || c == '-';
}

bool is_identifier(std::string_view name) {
  if (name.empty() || (name.front() >= '0' && name.front() <= '9')) {
    return false;
  }
  for (char c : name) {
    const bool ok =
        (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) {
      return false;
    }
  }
  return true;
}

// What every string must be, whatever its key: something a quoted CMake
// argument carries through unchanged.
Check check_text(const std::string& where, std::string_view text) {
  if (text.empty()) {
    return unexpected(where + " is empty");
  }
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return unexpected(where + " contains a newline or another control character");
    }
  }
  if (text.find("$<") != std::string_view::npos) {
    return unexpected(where + " contains \"$<\": generator expressions are not allowed");
  }
  return {};
}

Check check_relative_path(const std::string& where, std::string_view path) {
  if (path.front() == '/') {
    return unexpected(where + " \"" + std::string(path) + "\" must be a relative path");
  }
  for (const std::string& part : util::path_components(path)) {
    if (part == "..") {
      return unexpected(where + " \"" + std::string(path) + "\" must not contain '..'");
    }
  }
  return {};
}

// Adds source `path` to the recipe's languages; an error for an extension
// that is neither C nor C++.
Check add_language(const std::string& where, std::string_view path, Recipe& recipe) {
  const std::string_view name = util::base_name(path);
  const auto dot = name.rfind('.');
  const std::string_view ext = dot == std::string_view::npos ? "" : name.substr(dot);
  if (ext == ".c") {
    recipe.has_c = true;
  } else if (ext == ".cc" || ext == ".cpp" || ext == ".cxx" || ext == ".C") {
    recipe.has_cxx = true;
  } else {
    return unexpected(where + " \"" + std::string(path) +
                      "\" is not a C or C++ source (.c .cc .cpp .cxx .C)");
  }
  return {};
}

Check check_define(const std::string& where, std::string_view define) {
  const std::string_view name = define.substr(0, define.find('='));
  if (!is_identifier(name)) {
    return unexpected(where + " \"" + std::string(define) + "\" must be NAME or NAME=value");
  }
  // CMake drops a definition with '#' (with a warning) and takes "$(" for a
  // make variable: neither would reach the compiler as written.
  if (define.find('#') != std::string_view::npos) {
    return unexpected(where + " must not contain '#'");
  }
  if (define.find("$(") != std::string_view::npos) {
    return unexpected(where + " must not contain \"$(\"");
  }
  return {};
}

Check check_library(const std::string& where, std::string_view name) {
  for (char c : name) {
    if (!is_name_char(c)) {
      return unexpected(where + " \"" + std::string(name) +
                        "\" must be a library name of [A-Za-z0-9_.+-]");
    }
  }
  return {};
}

// The array of strings at `key` (none: empty), each checked by `check`.
template <typename F>
expected<std::vector<std::string>, std::string> strings(const toml::table& table,
                                                        std::string_view key, F check) {
  std::vector<std::string> out;
  const toml::node* node = table.get(key);
  if (node == nullptr) {
    return out;
  }
  const toml::array* array = node->as_array();
  if (array == nullptr) {
    return unexpected("'" + std::string(key) + "' must be an array of strings");
  }
  for (size_t i = 0; i < array->size(); ++i) {
    const auto value = array->get(i)->value_exact<std::string>();
    if (!value) {
      return unexpected(element(key, i) + " must be a string");
    }
    if (auto ok = check_text(element(key, i), *value); !ok) {
      return unexpected(ok.error());
    }
    if (auto ok = check(element(key, i), *value); !ok) {
      return unexpected(ok.error());
    }
    out.push_back(*value);
  }
  return out;
}

expected<std::optional<int64_t>, std::string> standard(const toml::table& table,
                                                       std::string_view key,
                                                       std::initializer_list<int64_t> allowed,
                                                       std::string_view allowed_text) {
  const toml::node* node = table.get(key);
  if (node == nullptr) {
    return std::nullopt;
  }
  const auto value = node->value_exact<int64_t>();
  if (!value) {
    return unexpected("'" + std::string(key) + "' must be an integer");
  }
  for (int64_t ok : allowed) {
    if (*value == ok) {
      return value;
    }
  }
  return unexpected("'" + std::string(key) + "' must be one of " + std::string(allowed_text));
}

expected<Recipe, std::string> parse_recipe(std::string_view toml_text) {
  toml::parse_result parsed = toml::parse(toml_text, std::string_view("kiln-program.toml"));
  if (!parsed) {
    return unexpected("kiln-program.toml, line " +
                      std::to_string(parsed.error().source().begin.line) + ": " +
                      std::string(parsed.error().description()));
  }
  const toml::table& table = parsed.table();
  for (auto&& [key, node] : table) {
    bool known = false;
    for (const char* name : k_keys) {
      known = known || key.str() == name;
    }
    if (!known) {
      return unexpected("unknown key '" + std::string(key.str()) +
                        "' (known: sources, include_dirs, defines, flags, link_flags, libraries, "
                        "cxx_standard, c_standard)");
    }
  }

  Recipe recipe;
  if (table.get("sources") == nullptr) {
    return unexpected(std::string("'sources' is required"));
  }
  auto sources = strings(table, "sources", [&](const std::string& where, std::string_view path) {
    if (auto ok = check_relative_path(where, path); !ok) {
      return ok;
    }
    return add_language(where, path, recipe);
  });
  if (!sources) {
    return unexpected(sources.error());
  }
  if (sources->empty()) {
    return unexpected(std::string("'sources' must name at least one file"));
  }
  recipe.sources = std::move(*sources);

  auto include_dirs = strings(table, "include_dirs", check_relative_path);
  auto defines = strings(table, "defines", check_define);
  const auto any = [](const std::string&, std::string_view) { return Check{}; };
  auto flags = strings(table, "flags", any);
  auto link_flags = strings(table, "link_flags", any);
  auto libraries = strings(table, "libraries", check_library);
  auto cxx = standard(table, "cxx_standard", {11, 14, 17, 20, 23}, "11, 14, 17, 20, 23");
  auto c = standard(table, "c_standard", {99, 11, 17}, "99, 11, 17");
  for (const std::string* error :
       {include_dirs ? nullptr : &include_dirs.error(), defines ? nullptr : &defines.error(),
        flags ? nullptr : &flags.error(), link_flags ? nullptr : &link_flags.error(),
        libraries ? nullptr : &libraries.error(), cxx ? nullptr : &cxx.error(),
        c ? nullptr : &c.error()}) {
    if (error != nullptr) {
      return unexpected(*error);
    }
  }
  recipe.include_dirs = std::move(*include_dirs);
  recipe.defines = std::move(*defines);
  recipe.flags = std::move(*flags);
  recipe.link_flags = std::move(*link_flags);
  recipe.libraries = std::move(*libraries);
  recipe.cxx_standard = *cxx;
  recipe.c_standard = *c;
  return recipe;
}

// `text` as one quoted CMake argument: after CMake's own unescaping (\\ \"
// \$ \;) the value is `text`, with no variable reference expanded and no
// list split. Control characters were refused before. `unescaped_prefix`
// is CMake code of ours put before `text` inside the quotes.
std::string quote(std::string_view text, std::string_view unescaped_prefix = "") {
  std::string out = "\"" + std::string(unescaped_prefix);
  for (char c : text) {
    if (c == '\\' || c == '"' || c == '$' || c == ';') {
      out += '\\';
    }
    out += c;
  }
  return out + "\"";
}

// One command with the target, a keyword and the quoted values (each after
// `prefix`, CMake code of ours), one a line; nothing without values.
std::string command(std::string_view name, const std::string& target, std::string_view keyword,
                    const std::vector<std::string>& values, std::string_view prefix = "") {
  if (values.empty()) {
    return "";
  }
  std::string out = std::string(name) + "(" + target;
  out += keyword.empty() ? "\n" : " " + std::string(keyword) + "\n";
  for (const std::string& value : values) {
    out += "  " + quote(value, prefix) + "\n";
  }
  return out + ")\n";
}

}  // namespace

bool valid_target_name(std::string_view target) {
  if (target.empty() || target.size() > 128 || target.front() == '.' || target.front() == '-') {
    return false;
  }
  for (char c : target) {
    if (!is_name_char(c)) {
      return false;
    }
  }
  // CMake's reserved target names (policy CMP0037 and its generators'), and
  // names of the build tree's own files, which the executable, written at
  // the top of the build tree, would overwrite.
  static constexpr std::array k_reserved = {"all",
                                            "ALL_BUILD",
                                            "clean",
                                            "depend",
                                            "edit_cache",
                                            "help",
                                            "install",
                                            "INSTALL",
                                            "list_install_components",
                                            "package",
                                            "PACKAGE",
                                            "package_source",
                                            "preinstall",
                                            "rebuild_cache",
                                            "RUN_TESTS",
                                            "test",
                                            "ZERO_CHECK",
                                            "build.ninja",
                                            "CMakeCache.txt",
                                            "CMakeFiles",
                                            "cmake_install.cmake",
                                            "compile_commands.json",
                                            "Makefile",
                                            "CTestTestfile.cmake"};
  for (const char* reserved : k_reserved) {
    if (target == reserved) {
      return false;
    }
  }
  return true;
}

expected<std::string, std::string> cmakelists_from_recipe(std::string_view toml_text,
                                                          std::string_view target) {
  if (!valid_target_name(target)) {
    return unexpected("invalid target name \"" + std::string(target) + "\"");
  }
  auto recipe = parse_recipe(toml_text);
  if (!recipe) {
    return unexpected(recipe.error());
  }
  const std::string name = quote(target);
  std::string languages;
  languages += recipe->has_c ? " C" : "";
  languages += recipe->has_cxx ? " CXX" : "";

  std::string out =
      "# Generated by kiln-server from kiln-program.toml; edits are overwritten.\n"
      "cmake_minimum_required(VERSION 3.16)\n"
      "project(kiln_program LANGUAGES" +
      languages + ")\n";
  out += command("add_executable", name, "", recipe->sources);
  std::string properties;
  if (recipe->cxx_standard) {
    properties += " CXX_STANDARD " + std::to_string(*recipe->cxx_standard) +
                  " CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF";
  }
  if (recipe->c_standard) {
    properties += " C_STANDARD " + std::to_string(*recipe->c_standard) +
                  " C_STANDARD_REQUIRED ON C_EXTENSIONS OFF";
  }
  if (!properties.empty()) {
    out += "set_target_properties(" + name + " PROPERTIES" + properties + ")\n";
  }
  out += command("target_include_directories", name, "PRIVATE", recipe->include_dirs,
                 "${CMAKE_CURRENT_SOURCE_DIR}/");
  out += command("target_compile_definitions", name, "PRIVATE", recipe->defines);
  out += command("target_compile_options", name, "PRIVATE", recipe->flags);
  out += command("target_link_options", name, "PRIVATE", recipe->link_flags);
  std::vector<std::string> libraries;
  for (const std::string& library : recipe->libraries) {
    libraries.push_back("-l" + library);
  }
  out += command("target_link_libraries", name, "PRIVATE", libraries);
  return out;
}

}  // namespace kiln::service
