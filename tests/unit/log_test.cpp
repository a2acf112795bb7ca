#include "kiln/util/log.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "kiln/util/string.hpp"
#include "kiln/util/thread_annotations.hpp"
#include "temp_dir.hpp"

namespace kiln::util {
namespace {

class MemorySink final : public LogSink {
 public:
  void write(std::string_view line) override {
    MutexLock lock(m_mutex);
    m_lines.emplace_back(line);
  }
  std::vector<std::string> lines() {
    MutexLock lock(m_mutex);
    return m_lines;
  }

 private:
  Mutex m_mutex;
  std::vector<std::string> m_lines GUARDED_BY(m_mutex);
};

// Checks that `s` is the inside of a valid JSON string in valid UTF-8.
bool valid_json_string_body(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == '"') {
      return false;
    }
    if (c == '\\') {
      if (++i >= s.size()) {
        return false;
      }
      char e = s[i];
      if (e == 'u') {
        if (i + 4 >= s.size()) {
          return false;
        }
        for (int k = 1; k <= 4; ++k) {
          if (!std::isxdigit(static_cast<unsigned char>(s[i + k]))) {
            return false;
          }
        }
        i += 4;
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return false;
      }
      continue;
    }
    if (c >= 0x80) {
      int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
      if (n == 0 || c > 0xF4 || i + n > s.size()) {
        return false;
      }
      for (int k = 1; k < n; ++k) {
        if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) {
          return false;
        }
      }
      i += n - 1;
    }
  }
  return true;
}

TEST(JsonEscapeTest, KeepsUtf8AndEscapesEverythingElse) {
  EXPECT_EQ(json_escape("a\"b\\c\n"), "a\\\"b\\\\c\\n");
  EXPECT_EQ(json_escape("caf\xc3\xa9"), "caf\xc3\xa9");       // é
  EXPECT_EQ(json_escape("\xf0\x9f\x94\xa5"), "\xf0\x9f\x94\xa5");  // 4-byte sequence
  EXPECT_EQ(json_escape("\xff"), "\\u00ff");
  EXPECT_EQ(json_escape("\xc3"), "\\u00c3");                 // truncated sequence
  EXPECT_EQ(json_escape("\xc0\xaf"), "\\u00c0\\u00af");     // overlong '/'
  EXPECT_EQ(json_escape("\xed\xa0\x80"), "\\u00ed\\u00a0\\u0080");  // a surrogate
  EXPECT_EQ(json_escape(std::string_view("\0\x01", 2)), "\\u0000\\u0001");
}

TEST(JsonEscapeTest, AnyBytesGiveValidJson) {
  std::mt19937 random(1);
  for (int round = 0; round < 2000; ++round) {
    std::string bytes(random() % 24, '\0');
    for (auto& b : bytes) {
      b = static_cast<char>(random() % 256);
    }
    std::string escaped = json_escape(bytes);
    ASSERT_TRUE(valid_json_string_body(escaped)) << "input round " << round;
  }
}

TEST(LoggerTest, WritesOneJsonObjectPerLineWithTimeLevelAndFields) {
  auto sink = std::make_shared<MemorySink>();
  ManualClock clock = ManualClock::at_unix_seconds(1700000000);
  clock.advance(std::chrono::microseconds(250));
  Logger log(sink, LogLevel::debug, clock);
  log.event("hit", {{"mode", "direct"}, {"bytes", 12}});
  ASSERT_EQ(sink->lines().size(), 1u);
  std::string line = sink->lines()[0];
  EXPECT_EQ(line.substr(0, 24), "{\"ts\":1700000000.000250,");
  EXPECT_NE(line.find("\"level\":\"info\",\"event\":\"hit\",\"mode\":\"direct\",\"bytes\":12}\n"),
            std::string::npos)
      << line;
}

TEST(LoggerTest, BoundContextIsOnEveryLineOfTheChildOnly) {
  auto sink = std::make_shared<MemorySink>();
  Logger root(sink);
  Logger job = root.bind({{"job_id", 7}, {"server_id", "w-3"}});
  job.warn("retry", {{"attempt", 2}});
  job.bind({{"program_id", 11}}).error("failed");
  root.event("idle");
  auto lines = sink->lines();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[0].find("\"level\":\"warn\",\"event\":\"retry\",\"job_id\":7,\"server_id\":\"w-3\","
                          "\"attempt\":2}"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find("\"job_id\":7,\"server_id\":\"w-3\",\"program_id\":11}"),
            std::string::npos)
      << lines[1];
  EXPECT_EQ(lines[2].find("job_id"), std::string::npos) << lines[2];
}

TEST(LoggerTest, LinesBelowTheLevelAreDropped) {
  auto sink = std::make_shared<MemorySink>();
  Logger log(sink, LogLevel::warn);
  log.debug("a");
  log.event("b");
  log.warn("c");
  log.error("d");
  ASSERT_EQ(sink->lines().size(), 2u);
  EXPECT_NE(sink->lines()[0].find("\"event\":\"c\""), std::string::npos);
  LogLevel l;
  EXPECT_TRUE(parse_log_level("error", &l));
  EXPECT_EQ(l, LogLevel::error);
  EXPECT_FALSE(parse_log_level("loud", &l));
}

TEST(LoggerTest, WithoutASinkNothingHappens) {
  Logger log;
  EXPECT_FALSE(log.enabled());
  log.event("nothing", {{"k", "v"}});
  EXPECT_FALSE(log.bind({{"job_id", 1}}).enabled());
}

class LoggerFileTest : public testing::TempDirTest {};

TEST_F(LoggerFileTest, ThreadsWriteWholeLines) {
  const std::string path = m_dir + "/log";
  Logger log;
  ASSERT_TRUE(log.open(path));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&log, t] {
      Logger mine = log.bind({{"job_id", t}});
      for (int i = 0; i < 500; ++i) {
        mine.event("line", {{"i", i}, {"pad", std::string(100, 'x')}});
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  std::ifstream in(path);
  std::string line;
  int count = 0;
  while (std::getline(in, line)) {
    ++count;
    ASSERT_EQ(line.front(), '{');
    ASSERT_EQ(line.back(), '}');
    ASSERT_EQ(line.find('{', 1), std::string::npos) << "two lines ran together: " << line;
  }
  EXPECT_EQ(count, 2000);
}

TEST_F(LoggerFileTest, AnUnopenableFileLeavesTheLoggerAsItWas) {
  Logger log;
  EXPECT_FALSE(log.open(m_dir + "/no/such/dir/log"));
  EXPECT_FALSE(log.enabled());
}

}  // namespace
}  // namespace kiln::util
