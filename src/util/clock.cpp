#include "kiln/util/clock.hpp"

namespace kiln::util {

namespace {

class SystemClock final : public Clock {
 public:
  WallPoint wall() const override { return std::chrono::system_clock::now(); }
  SteadyPoint steady() const override { return std::chrono::steady_clock::now(); }
};

}  // namespace

const Clock& Clock::system() {
  static const SystemClock clock;
  return clock;
}

}  // namespace kiln::util
