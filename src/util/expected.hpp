#pragma once

// One choice of expected<T, E> for the whole code base (see STYLE.md):
// tl::expected, from Debian's libexpected-dev, until the project moves to C++23.
#include <tl/expected.hpp>

namespace kiln {
using tl::expected;
using tl::unexpected;
}  // namespace kiln
