#include "kiln/storage/chain.hpp"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kiln/util/hash.hpp"

namespace kiln::storage {
namespace {

// A level in memory whose operations can be made to fail: every get, put or
// remove checks its injected failure first and records what it was asked.
class FakeStorage : public Storage {
 public:
  explicit FakeStorage(std::string name) : m_name(std::move(name)) {}

  std::string_view name() const override { return m_name; }

  expected<std::string, Failure> get(const Key& key) override {
    ++gets;
    if (get_failure) {
      return unexpected(record(*get_failure, "GET", key));
    }
    auto it = values.find(key.name());
    if (it == values.end()) {
      return unexpected(Failure::not_found);
    }
    return it->second;
  }

  expected<void, Failure> put(const Key& key, std::string_view value) override {
    ++puts;
    if (put_failure) {
      return unexpected(record(*put_failure, "PUT", key));
    }
    values[key.name()] = std::string(value);
    return {};
  }

  expected<void, Failure> remove(const Key& key) override {
    removed.push_back(key.name());
    if (values.erase(key.name()) == 0) {
      return unexpected(Failure::not_found);
    }
    return {};
  }

  expected<bool, Failure> exists(const Key& key) override { return values.count(key.name()) > 0; }

  Error last_problem() const override { return m_error; }

  std::map<std::string, std::string> values;  // by key name
  std::optional<Failure> get_failure;
  std::optional<Failure> put_failure;
  int gets = 0;
  int puts = 0;
  std::vector<std::string> removed;

 private:
  // A message that names the entry, as the HTTP level's do.
  Failure record(Failure f, std::string_view method, const Key& key) {
    m_error = Error::naming(f, "fake " + m_name + ": " + std::string(method) + " /cache/",
                            key.relative_path(), " failed");
    return f;
  }

  std::string m_name;
  Error m_error;
};

Key key_of(std::string_view text) {
  return Key{util::Hasher().field(text).finish(), EntryKind::result};
}

bool always_valid(std::string_view) {
  return true;
}

StorageChain::LevelSpec open_level(FakeStorage* s, bool read_only = false) {
  StorageChain::LevelSpec spec;
  spec.name = std::string(s->name());
  spec.storage = s;
  spec.read_only = read_only;
  return spec;
}

class ChainTest : public ::testing::Test {
 protected:
  FakeStorage m_local{"local"};
  FakeStorage m_redis{"redis"};
  FakeStorage m_s3{"s3"};
  Key m_key = key_of("a");
};

TEST_F(ChainTest, FirstHitWins) {
  m_redis.values[m_key.name()] = "from redis";
  m_s3.values[m_key.name()] = "from s3";
  StorageChain chain({open_level(&m_local), open_level(&m_redis), open_level(&m_s3)});
  EXPECT_EQ(chain.get(m_key, always_valid), "from redis");
  EXPECT_EQ(m_s3.gets, 0);
  EXPECT_EQ(chain.count_of("local", LevelEvent::miss), 1);
  EXPECT_EQ(chain.count_of("redis", LevelEvent::hit), 1);
  EXPECT_EQ(chain.count_of("redis", LevelEvent::read_bytes), 10);
  EXPECT_EQ(chain.count_of("s3", LevelEvent::miss), 0);
  EXPECT_TRUE(chain.failures().empty());
}

TEST_F(ChainTest, MissOnEveryLevel) {
  StorageChain chain({open_level(&m_local), open_level(&m_redis)});
  EXPECT_EQ(chain.get(m_key, always_valid), std::nullopt);
  EXPECT_EQ(chain.count_of("local", LevelEvent::miss), 1);
  EXPECT_EQ(chain.count_of("redis", LevelEvent::miss), 1);
}

TEST_F(ChainTest, HitBackfillsTheFasterWritableLevels) {
  m_s3.values[m_key.name()] = "value";
  StorageChain chain(
      {open_level(&m_local), open_level(&m_redis, /*read_only=*/true), open_level(&m_s3)});
  EXPECT_EQ(chain.get(m_key, always_valid), "value");
  EXPECT_EQ(m_local.values[m_key.name()], "value");
  EXPECT_EQ(m_redis.values.count(m_key.name()), 0u);  // read-only: not written
  EXPECT_EQ(m_redis.puts, 0);
  EXPECT_EQ(chain.count_of("local", LevelEvent::backfill), 1);
  EXPECT_EQ(chain.count_of("redis", LevelEvent::backfill), 0);
  // Next time the local level has it.
  EXPECT_EQ(chain.get(m_key, always_valid), "value");
  EXPECT_EQ(chain.count_of("local", LevelEvent::hit), 1);
  EXPECT_EQ(m_s3.gets, 1);
}

TEST_F(ChainTest, FailedLevelIsSkippedForTheRestOfTheChainsLife) {
  m_redis.get_failure = Failure::timeout;
  m_s3.values[m_key.name()] = "value";
  StorageChain chain({open_level(&m_local), open_level(&m_redis), open_level(&m_s3)});
  EXPECT_EQ(chain.get(m_key, always_valid), "value");  // the search goes on past it
  EXPECT_EQ(chain.get(key_of("b"), always_valid), std::nullopt);
  EXPECT_EQ(chain.put(key_of("c"), "new"), 2);  // local and s3
  EXPECT_EQ(m_redis.gets, 1);
  EXPECT_EQ(m_redis.puts, 0);
  EXPECT_EQ(chain.count_of("redis", LevelEvent::read_timeout), 1);
  EXPECT_EQ(chain.count_of("redis", LevelEvent::read_error), 0);
  EXPECT_EQ(chain.timed_out(), std::vector<std::string>{"redis"});
  ASSERT_EQ(chain.failures().size(), 1u);
  const Problem& p = chain.failures()[0];
  EXPECT_EQ(p.level, "redis");
  EXPECT_EQ(p.operation, Operation::read);
  EXPECT_EQ(p.error.failure, Failure::timeout);
  EXPECT_EQ(p.error.key, m_key.relative_path());
  EXPECT_EQ(p.error.text(), "fake redis: GET /cache/" + m_key.relative_path() + " failed");
  // Shown without the entry, so that it reads the same for every entry.
  EXPECT_EQ(chain.problems(),
            std::vector<std::string>{"redis: fake redis: GET /cache/<key> failed"});
}

TEST_F(ChainTest, WriteFailuresAreCountedApartFromReadFailures) {
  m_redis.put_failure = Failure::access_denied;
  StorageChain chain({open_level(&m_local), open_level(&m_redis)});
  EXPECT_EQ(chain.put(m_key, "value"), 1);
  EXPECT_EQ(chain.count_of("local", LevelEvent::write), 1);
  EXPECT_EQ(chain.count_of("local", LevelEvent::written_bytes), 5);
  EXPECT_EQ(chain.count_of("redis", LevelEvent::write_error), 1);
  EXPECT_TRUE(is_write_failure(LevelEvent::write_error));
  EXPECT_FALSE(is_read_failure(LevelEvent::write_error));
  ASSERT_EQ(chain.failures().size(), 1u);
  EXPECT_EQ(chain.failures()[0].operation, Operation::write);
  EXPECT_EQ(chain.failures()[0].error.failure, Failure::access_denied);
  EXPECT_TRUE(chain.timed_out().empty());
}

TEST_F(ChainTest, FailedBackfillIsAWriteFailure) {
  m_local.put_failure = Failure::error;
  m_redis.values[m_key.name()] = "value";
  StorageChain chain({open_level(&m_local), open_level(&m_redis)});
  EXPECT_EQ(chain.get(m_key, always_valid), "value");
  EXPECT_EQ(chain.count_of("local", LevelEvent::write_error), 1);
  EXPECT_EQ(chain.count_of("local", LevelEvent::backfill), 0);
  EXPECT_EQ(chain.count_of("redis", LevelEvent::hit), 1);
}

TEST_F(ChainTest, PutWritesEveryWritableLevel) {
  StorageChain chain(
      {open_level(&m_local), open_level(&m_redis, /*read_only=*/true), open_level(&m_s3)});
  EXPECT_EQ(chain.put(m_key, "value"), 2);
  EXPECT_EQ(m_local.values[m_key.name()], "value");
  EXPECT_EQ(m_s3.values[m_key.name()], "value");
  EXPECT_EQ(m_redis.puts, 0);
  EXPECT_EQ(chain.count_of("s3", LevelEvent::write), 1);
}

TEST_F(ChainTest, CorruptValueIsRemovedFromAWritableLevelAndReadsGoOn) {
  m_local.values[m_key.name()] = "bad";
  m_redis.values[m_key.name()] = "good";
  StorageChain chain({open_level(&m_local), open_level(&m_redis)});
  auto valid = [](std::string_view v) { return v == "good"; };
  EXPECT_EQ(chain.get(m_key, valid), "good");
  EXPECT_EQ(chain.count_of("local", LevelEvent::corrupt), 1);
  EXPECT_EQ(chain.count_of("local", LevelEvent::hit), 0);
  EXPECT_EQ(m_local.removed, std::vector<std::string>{m_key.name()});
  // Backfilled with the good one.
  EXPECT_EQ(m_local.values[m_key.name()], "good");
}

TEST_F(ChainTest, CorruptValueIsNotRemovedFromAReadOnlyLevel) {
  m_redis.values[m_key.name()] = "bad";
  StorageChain chain({open_level(&m_local), open_level(&m_redis, /*read_only=*/true)});
  EXPECT_EQ(chain.get(m_key, [](std::string_view) { return false; }), std::nullopt);
  EXPECT_EQ(chain.count_of("redis", LevelEvent::corrupt), 1);
  EXPECT_TRUE(m_redis.removed.empty());
  EXPECT_EQ(m_redis.values[m_key.name()], "bad");
  EXPECT_EQ(m_local.values.count(m_key.name()), 0u);
}

TEST_F(ChainTest, DiscardRemovesTheValueWhereItCameFromAndWhereItWasBackfilled) {
  m_s3.values[m_key.name()] = "parses badly";
  StorageChain chain({open_level(&m_local), open_level(&m_redis), open_level(&m_s3)});
  ASSERT_EQ(chain.get(m_key, always_valid), "parses badly");
  ASSERT_EQ(m_redis.values.count(m_key.name()), 1u);
  chain.discard(m_key);
  EXPECT_EQ(m_s3.values.count(m_key.name()), 0u);
  EXPECT_EQ(m_redis.values.count(m_key.name()), 0u);
  EXPECT_EQ(m_local.values.count(m_key.name()), 0u);
  EXPECT_EQ(chain.count_of("s3", LevelEvent::corrupt), 1);
  EXPECT_EQ(chain.count_of("s3", LevelEvent::hit), 0);
  EXPECT_EQ(chain.counters().count(LevelCounter{"s3", LevelEvent::hit}), 0u);
  // The next look-up finds nothing to fetch again.
  EXPECT_EQ(chain.get(m_key, always_valid), std::nullopt);
  EXPECT_EQ(chain.count_of("s3", LevelEvent::miss), 1);
}

TEST_F(ChainTest, DiscardLeavesAReadOnlySourceAlone) {
  m_redis.values[m_key.name()] = "parses badly";
  StorageChain chain({open_level(&m_local), open_level(&m_redis, /*read_only=*/true)});
  ASSERT_EQ(chain.get(m_key, always_valid), "parses badly");
  chain.discard(m_key);
  EXPECT_TRUE(m_redis.removed.empty());
  EXPECT_EQ(m_local.values.count(m_key.name()), 0u);  // the backfilled copy goes
  EXPECT_EQ(chain.count_of("redis", LevelEvent::corrupt), 1);
}

TEST_F(ChainTest, DiscardOfAnotherKeyDoesNothing) {
  m_local.values[m_key.name()] = "value";
  StorageChain chain({open_level(&m_local)});
  ASSERT_EQ(chain.get(m_key, always_valid), "value");
  chain.discard(key_of("other"));
  EXPECT_TRUE(m_local.removed.empty());
  EXPECT_EQ(chain.count_of("local", LevelEvent::hit), 1);
  EXPECT_EQ(chain.count_of("local", LevelEvent::corrupt), 0);
}

TEST_F(ChainTest, OpenerIsCalledOnlyWhenTheLevelIsReached) {
  m_local.values[m_key.name()] = "local value";
  int opened = 0;
  StorageChain::LevelSpec remote;
  remote.name = "redis";
  remote.open = [&]() -> expected<std::unique_ptr<Storage>, std::string> {
    ++opened;
    auto s = std::make_unique<FakeStorage>("redis");
    s->values[key_of("b").name()] = "remote value";
    return std::unique_ptr<Storage>(std::move(s));
  };
  StorageChain chain({open_level(&m_local), std::move(remote)});
  EXPECT_EQ(chain.get(m_key, always_valid), "local value");
  EXPECT_EQ(opened, 0);  // a local hit never opens the remote level
  EXPECT_EQ(chain.get(key_of("b"), always_valid), "remote value");
  EXPECT_EQ(chain.get(key_of("c"), always_valid), std::nullopt);
  EXPECT_EQ(opened, 1);  // once
}

TEST_F(ChainTest, OpenerFailureIsCountedAndTheLevelSkipped) {
  int opened = 0;
  StorageChain::LevelSpec remote;
  remote.name = "s3";
  remote.open = [&]() -> expected<std::unique_ptr<Storage>, std::string> {
    ++opened;
    return unexpected(std::string("cannot load the remote-storage plugin"));
  };
  StorageChain chain({open_level(&m_local), std::move(remote)});
  EXPECT_EQ(chain.get(m_key, always_valid), std::nullopt);
  EXPECT_EQ(chain.put(m_key, "value"), 1);
  EXPECT_EQ(opened, 1);
  EXPECT_EQ(chain.count_of("s3", LevelEvent::read_error), 1);
  EXPECT_EQ(chain.level(1), nullptr);
  EXPECT_EQ(chain.problems(),
            std::vector<std::string>{"s3: cannot load the remote-storage plugin"});
  EXPECT_EQ(chain.failures()[0].error.failure, Failure::error);
}

TEST_F(ChainTest, SkippedLevelIsNeverUsedAndCountedOnce) {
  m_redis.values[m_key.name()] = "value";
  StorageChain::LevelSpec redis = open_level(&m_redis);
  redis.skip = true;
  StorageChain chain({open_level(&m_local), std::move(redis)});
  EXPECT_EQ(chain.get(m_key, always_valid), std::nullopt);
  EXPECT_EQ(chain.put(key_of("b"), "value"), 1);
  EXPECT_EQ(m_redis.gets, 0);
  EXPECT_EQ(m_redis.puts, 0);
  EXPECT_EQ(chain.count_of("redis", LevelEvent::skipped), 1);
  EXPECT_TRUE(chain.failures().empty());
}

TEST(LevelCounterTest, NamesAreThoseOfTheStatistics) {
  EXPECT_EQ((LevelCounter{"redis", LevelEvent::read_timeout}.name()), "redis_read_timeout");
  EXPECT_EQ((LevelCounter{"s3", LevelEvent::written_bytes}.name()), "s3_written_bytes");
  EXPECT_EQ((LevelCounter{"local", LevelEvent::skipped}.name()), "local_skipped");
}

}  // namespace
}  // namespace kiln::storage
