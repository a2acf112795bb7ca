#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kiln::util {

std::string_view dir_name(std::string_view path);   // "a/b" -> "a", "b" -> "."
std::string_view base_name(std::string_view path);  // "a/b.c" -> "b.c"
std::string join_path(std::string_view a, std::string_view b);

// The names between slashes, empty ones (a leading, doubled or trailing
// slash) left out: "/usr//lib/" -> {"usr", "lib"}.
std::vector<std::string> path_components(std::string_view path);

// Lexically normalizes: removes "." components, duplicate slashes and resolves
// ".." against preceding components (without touching the file system).
std::string normalize(std::string_view path);

// `path` made absolute against `cwd` (if relative) and normalized.
std::string absolute(std::string_view path, std::string_view cwd);

// A relative path from directory `from` to `to`; both must be absolute and normalized.
std::string relative(std::string_view to, std::string_view from);

// True if `path` is `dir` or lies below it (both absolute and normalized).
bool is_under(std::string_view path, std::string_view dir);

// The working directory; prefers $PWD when it names the same directory, as the
// compiler and the build system see that spelling.
std::string current_dir();

// realpath(3); empty on failure.
std::string real_path(const std::string& path);

}  // namespace kiln::util
