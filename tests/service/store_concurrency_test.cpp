// Several connections, threads and processes on one database: migrations run
// once, and no program version is ever claimed twice.

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "kiln/service/program_id.hpp"
#include "store_fixture.hpp"

namespace kiln::service::test {
namespace {

class StoreConcurrencyTest : public StoreTest {};

const char* const k_recipe = R"({"target":"app"})";
const char* const k_sha = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

TEST_P(StoreConcurrencyTest, ConcurrentOpenersOfANewDatabaseMigrateOnce) {
  constexpr int k_threads = 4;
  std::atomic<int> ready{0};
  std::vector<std::string> errors(k_threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < k_threads) {
      }
      // Migration 1 is CREATE TABLE without IF NOT EXISTS: a second run of
      // it would fail the open.
      auto store = open_store(m_url);
      if (!store) {
        errors[t] = store.error();
      } else if (auto version = (*store)->schema_version(); !version) {
        errors[t] = version.error();
      } else if (*version != Store::latest_schema_version()) {
        errors[t] = "schema version " + std::to_string(*version);
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  for (int t = 0; t < k_threads; ++t) {
    EXPECT_EQ(errors[t], "") << "opener " << t;
  }
}

// Claims with `store` until a claim comes back empty; returns the claimed
// ids with their versions.
std::vector<std::string> claim_all(Store& store, int64_t worker, int64_t workers, int64_t limit,
                                   std::string& error) {
  std::vector<std::string> ids;
  for (;;) {
    auto claims = store.claim(worker, workers, limit);
    if (!claims) {
      error = claims.error();
      return ids;
    }
    if (claims->empty()) {
      return ids;
    }
    if (static_cast<int64_t>(claims->size()) > limit) {
      error = "a claim returned more than its limit";
    }
    for (const auto& c : *claims) {
      ids.push_back(c.id + "@" + std::to_string(c.version));
    }
  }
}

TEST_P(StoreConcurrencyTest, ThreadsWithTheirOwnConnectionsClaimEachProgramOnce) {
  auto setup = open();
  ASSERT_NE(setup, nullptr);
  for (int i = 0; i < 200; ++i) {
    must(setup->upsert("p" + std::to_string(i), k_sha, k_recipe));
  }
  constexpr int k_threads = 4;
  std::vector<std::vector<std::string>> claimed(k_threads);
  std::vector<std::string> errors(k_threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      auto store = open_store(m_url);
      if (!store) {
        errors[t] = store.error();
        return;
      }
      claimed[t] = claim_all(**store, 0, 1, 3, errors[t]);
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  std::map<std::string, int> times;
  for (int t = 0; t < k_threads; ++t) {
    EXPECT_EQ(errors[t], "") << "claimer " << t;
    for (const auto& id : claimed[t]) {
      ++times[id];
    }
  }
  EXPECT_EQ(times.size(), 200u);
  for (const auto& [id, n] : times) {
    EXPECT_EQ(n, 1) << id << " claimed " << n << " times";
  }
  for (const Program& p : must(setup->list())) {
    EXPECT_EQ(p.status, Status::compiling);
    EXPECT_EQ(p.compile_count, 1);
  }
}

TEST_P(StoreConcurrencyTest, OneStoreSharedByThreadsClaimsEachProgramOnce) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 100; ++i) {
    must(store->upsert("p" + std::to_string(i), k_sha, k_recipe));
  }
  constexpr int k_threads = 4;
  std::vector<std::vector<std::string>> claimed(k_threads);
  std::vector<std::string> errors(k_threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] { claimed[t] = claim_all(*store, 0, 1, 2, errors[t]); });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  std::set<std::string> all;
  size_t total = 0;
  for (int t = 0; t < k_threads; ++t) {
    EXPECT_EQ(errors[t], "");
    total += claimed[t].size();
    all.insert(claimed[t].begin(), claimed[t].end());
  }
  EXPECT_EQ(total, 100u);
  EXPECT_EQ(all.size(), 100u);
}

// Two replicas that both believe they are worker 1 of 2 (a misconfigured or
// overlapping rollout), as two processes: each program of shard 1 is claimed
// by exactly one of them, and shard 0 is left alone.
TEST_P(StoreConcurrencyTest, TwoProcessesWithOneWorkerIdClaimEachProgramOnce) {
  {
    auto setup = open();
    ASSERT_NE(setup, nullptr);
    for (int i = 0; i < 200; ++i) {
      must(setup->upsert("p" + std::to_string(i), k_sha, k_recipe));
    }
  }
  const std::string child_out =
      (m_dir.empty() ? std::string("/tmp") : m_dir) + "/child-" + std::to_string(getpid()) + ".txt";
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child: its own connection, its own claims, written to a file; it
    // leaves with _exit so that nothing of the parent's test state runs.
    std::ofstream out(child_out);
    auto store = open_store(m_url);
    if (!store) {
      out << "ERROR " << store.error() << "\n";
      out.close();
      _exit(1);
    }
    std::string error;
    for (const auto& id : claim_all(**store, 1, 2, 3, error)) {
      out << id << "\n";
    }
    if (!error.empty()) {
      out << "ERROR " << error << "\n";
    }
    out.close();
    store->reset();
    _exit(error.empty() ? 0 : 1);
  }
  std::string error;
  std::vector<std::string> mine;
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    mine = claim_all(*store, 1, 2, 3, error);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_EQ(error, "");
  std::ifstream in(child_out);
  std::vector<std::string> theirs;
  for (std::string line; std::getline(in, line);) {
    theirs.push_back(line);
  }
  std::remove(child_out.c_str());
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << (theirs.empty() ? "" : theirs.back());

  std::map<std::string, int> times;
  for (const auto& id : mine) {
    ++times[id];
  }
  for (const auto& id : theirs) {
    ++times[id];
  }
  auto check = open();
  ASSERT_NE(check, nullptr);
  const auto shard1 = must(check->shard_ids(1, 2));
  EXPECT_EQ(times.size(), shard1.size());
  for (const auto& id : shard1) {
    EXPECT_EQ(times[id + "@1"], 1) << id;
  }
  for (const Program& p : must(check->list())) {
    EXPECT_EQ(p.status, shard_of(p.id, 2) == 1u ? Status::compiling : Status::pending) << p.id;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreConcurrencyTest,
                         ::testing::Values(Backend::sqlite, Backend::postgres), backend_name);

}  // namespace
}  // namespace kiln::service::test
