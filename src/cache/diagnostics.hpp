#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "kiln/compiler/family.hpp"
#include "kiln/util/environment.hpp"

namespace kiln::cache {

// Colours as the compiler would show them (docs/direct-mode.md, "Colours"):
// kiln always has the compiler colour its diagnostics, stores them so, and
// takes the colours away where the compiler, writing to kiln's stderr
// itself, would not have shown them, as ccache does.

// gcc's or clang's "auto" decision for a stderr that is (or not) a terminal,
// in the environment `env`: a terminal that is not "dumb" (and for gcc,
// GCC_COLORS not set to nothing).
bool would_colour(compiler::Family family, const util::Environment& env, bool err_is_terminal);

// The option that makes the compiler colour its diagnostics on a pipe.
std::vector<std::string> colour_options(compiler::Family family);

// `stored` without its SGR colour sequences unless `colours`.
std::string restyle_diagnostics(std::string_view stored, bool colours);

}  // namespace kiln::cache
