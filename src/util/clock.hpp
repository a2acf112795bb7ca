#pragma once

#include <chrono>
#include <cstdint>

namespace kiln::util {

// The one source of time for kiln. Code that reads the time takes a Clock
// (usually `const Clock&` defaulting to Clock::system()) so that tests and
// daemons can inject their own: a test advances a ManualClock instead of
// sleeping, and SigV4 signing is checked against fixed dates.
//
// Two readings, never mixed:
//  - wall(): calendar time (file ages, signatures, log timestamps);
//  - steady(): a monotonic point for deadlines and durations.
class Clock {
 public:
  using WallPoint = std::chrono::system_clock::time_point;
  using SteadyPoint = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;
  virtual WallPoint wall() const = 0;
  virtual SteadyPoint steady() const = 0;

  // Nanoseconds since the Unix epoch, the unit of file mtimes in kiln.
  int64_t wall_ns() const {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(wall().time_since_epoch()).count();
  }
  int64_t wall_seconds() const {
    return std::chrono::duration_cast<std::chrono::seconds>(wall().time_since_epoch()).count();
  }

  // The process-wide real clock (system_clock and steady_clock).
  static const Clock& system();
};

// A clock that moves only when told to: for tests, never for production code.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(WallPoint wall = WallPoint{}, SteadyPoint steady = SteadyPoint{})
      : m_wall(wall), m_steady(steady) {}
  static ManualClock at_unix_seconds(int64_t seconds) {
    return ManualClock(WallPoint{std::chrono::seconds(seconds)});
  }

  WallPoint wall() const override { return m_wall; }
  SteadyPoint steady() const override { return m_steady; }
  // Moves both readings forward by `d`.
  template <class Rep, class Period>
  void advance(std::chrono::duration<Rep, Period> d) {
    m_wall += std::chrono::duration_cast<WallPoint::duration>(d);
    m_steady += std::chrono::duration_cast<SteadyPoint::duration>(d);
  }

 private:
  WallPoint m_wall;
  SteadyPoint m_steady;
};

}  // namespace kiln::util
