// kiln: the compiler cache front end. Everything but this line lives in the
// libraries (src/cli/driver.cpp); see docs/architecture.md.
#include <string>
#include <vector>

#include "kiln/cli/driver.hpp"

int main(int argc, char** argv) {
  return kiln::cli::run(std::vector<std::string>(argv, argv + argc), kiln::cli::default_hooks());
}
