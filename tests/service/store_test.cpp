// The store's operations, one behaviour a test, on both backends.

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <thread>

#include "kiln/service/database.hpp"
#include "kiln/service/program_id.hpp"
#include "postgres_server.hpp"
#include "store_fixture.hpp"

namespace kiln::service::test {
namespace {

const char* const k_recipe = R"({"cmake_args":["-DX=1"],"target":"app"})";
const char* const k_sha_a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const char* const k_sha_b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

TEST_P(StoreTest, OpenMigratesToTheLatestSchema) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(must(store->schema_version()), Store::latest_schema_version());
  EXPECT_GE(Store::latest_schema_version(), 2);
}

TEST_P(StoreTest, ReopeningAMigratedDatabaseKeepsItsData) {
  {
    auto store = open();
    ASSERT_NE(store, nullptr);
    must(store->upsert("hello", k_sha_a, k_recipe));
  }
  auto again = open();
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(must(again->schema_version()), Store::latest_schema_version());
  auto program = must(again->get("hello"));
  ASSERT_TRUE(program);
  EXPECT_EQ(program->version, 1);
}

TEST_P(StoreTest, SourcesAreStoredOnceAndRemovedWhenNoProgramUsesThem) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(must(store->get_source(k_sha_a)));
  must(store->put_source(k_sha_a, "YWJj"));
  must(store->put_source(k_sha_a, "YWJj"));  // a second submission of the same archive
  must(store->put_source(k_sha_b, "ZGVm"));
  EXPECT_EQ(must(store->get_source(k_sha_a)), std::optional<std::string>("YWJj"));
  must(store->upsert("hello", k_sha_a, k_recipe));
  // Too young to be removed, whoever refers to it.
  EXPECT_EQ(must(store->remove_unreferenced_sources(std::chrono::hours(1))), 0);
  EXPECT_EQ(must(store->remove_unreferenced_sources(std::chrono::milliseconds(-1000))), 1);
  EXPECT_TRUE(must(store->get_source(k_sha_a)));  // "hello" uses it
  EXPECT_FALSE(must(store->get_source(k_sha_b)));
}

TEST_P(StoreTest, ASystemErrorIsRetriedButACompileErrorIsNot) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  Program p = must(store->upsert("hello", k_sha_a, k_recipe)).program;
  EXPECT_FALSE(must(store->retry_system_error(p.id, p.version)));  // Pending: nothing to retry
  ASSERT_EQ(must(store->claim(0, 1, 1)).size(), 1u);
  ASSERT_TRUE(must(store->finish(p.id, p.version, Status::system_error, "disk full", 0, 0, {})));
  EXPECT_FALSE(must(store->retry_system_error(p.id, p.version + 1)));  // another version
  EXPECT_TRUE(must(store->retry_system_error(p.id, p.version)));
  auto again = must(store->get("hello"));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, Status::pending);
  EXPECT_EQ(again->log, "");
  ASSERT_EQ(must(store->claim(0, 1, 1)).size(), 1u);
  ASSERT_TRUE(must(store->finish(p.id, p.version, Status::compile_error, "error: x", 0, 0, {})));
  EXPECT_FALSE(must(store->retry_system_error(p.id, p.version)));
}

// NOTIFY is PostgreSQL's (SQLite replicas poll): these run on it alone.
class PostgresStoreTest : public StoreTest {};

// Every write that makes a version Pending is notified on kiln_pending,
// which replicas LISTEN to; nothing else is.
TEST_P(PostgresStoreTest, PendingVersionsAreNotified) {
  using namespace std::chrono_literals;
  auto listener = listen_postgres(m_url, k_pending_channel);
  ASSERT_TRUE(listener) << listener.error();
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(must((*listener)->wait(100ms)));
  Program p = must(store->upsert("hello", k_sha_a, k_recipe)).program;
  EXPECT_TRUE(must((*listener)->wait(5s))) << "a new program";
  EXPECT_FALSE(must((*listener)->wait(100ms))) << "one notification, consumed";
  EXPECT_FALSE(must(store->upsert("hello", k_sha_a, k_recipe)).changed);
  EXPECT_FALSE(must((*listener)->wait(300ms))) << "an unchanged upsert";
  ASSERT_EQ(must(store->claim(0, 1, 1)).size(), 1u);
  EXPECT_FALSE(must((*listener)->wait(100ms))) << "a claim";
  ASSERT_TRUE(must(store->finish(p.id, 1, Status::success, "", 0, 0, std::string(k_sha_b))));
  ASSERT_TRUE(must(store->back_to_pending(p.id, 1)));
  EXPECT_TRUE(must((*listener)->wait(5s))) << "a lost binary";
  ASSERT_EQ(must(store->claim(0, 1, 1)).size(), 1u);
  ASSERT_TRUE(must(store->finish(p.id, 1, Status::system_error, "disk full", 0, 0, {})));
  ASSERT_TRUE(must(store->retry_system_error(p.id, 1)));
  EXPECT_TRUE(must((*listener)->wait(5s))) << "a retried SystemError";
  EXPECT_FALSE(listen_postgres("postgresql://nobody@127.0.0.1:1/none", k_pending_channel));
}

TEST_P(StoreTest, UpsertCreatesAPendingFirstVersion) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  auto created = must(store->upsert("hello", k_sha_a, k_recipe));
  EXPECT_TRUE(created.changed);
  const Program& p = created.program;
  EXPECT_TRUE(std::regex_match(
      p.id, std::regex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")))
      << p.id;
  EXPECT_EQ(p.name, "hello");
  EXPECT_EQ(p.version, 1);
  EXPECT_EQ(p.status, Status::pending);
  EXPECT_EQ(p.source_sha256, k_sha_a);
  EXPECT_EQ(p.recipe, k_recipe);
  EXPECT_FALSE(p.compiled_by);
  EXPECT_EQ(p.log, "");
  EXPECT_EQ(p.cache_hits, 0);
  EXPECT_EQ(p.cache_misses, 0);
  EXPECT_FALSE(p.binary_sha256);
  EXPECT_EQ(p.compile_count, 0);
  EXPECT_GT(p.created_at_ms, 1'600'000'000'000);
  EXPECT_EQ(p.created_at_ms, p.updated_at_ms);
}

TEST_P(StoreTest, UpsertOfTheSameProgramChangesNothing) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  auto first = must(store->upsert("hello", k_sha_a, k_recipe));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto second = must(store->upsert("hello", k_sha_a, k_recipe));
  EXPECT_FALSE(second.changed);
  EXPECT_EQ(second.program.id, first.program.id);
  EXPECT_EQ(second.program.version, 1);
  EXPECT_EQ(second.program.updated_at_ms, first.program.updated_at_ms);
  EXPECT_EQ(must(store->list()).size(), 1u);
}

TEST_P(StoreTest, ChangedSourceOrRecipeMakesANewPendingVersion) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  const Program v1 = must(store->upsert("hello", k_sha_a, k_recipe)).program;
  auto claims = must(store->claim(0, 1, 10));
  ASSERT_EQ(claims.size(), 1u);
  ASSERT_TRUE(must(store->finish(v1.id, 1, Status::success, "built", 3, 4, std::string(k_sha_b))));

  auto v2 = must(store->upsert("hello", k_sha_b, k_recipe));
  EXPECT_TRUE(v2.changed);
  EXPECT_EQ(v2.program.id, v1.id);
  EXPECT_EQ(v2.program.version, 2);
  EXPECT_EQ(v2.program.status, Status::pending);
  EXPECT_EQ(v2.program.source_sha256, k_sha_b);
  EXPECT_FALSE(v2.program.binary_sha256);
  EXPECT_EQ(v2.program.log, "");
  EXPECT_EQ(v2.program.cache_hits, 0);
  EXPECT_FALSE(v2.program.compiled_by);
  EXPECT_EQ(v2.program.compile_count, 1);  // counts claims of every version
  EXPECT_EQ(v2.program.created_at_ms, v1.created_at_ms);

  auto v3 = must(store->upsert("hello", k_sha_b, R"({"cmake_args":[],"target":"app"})"));
  EXPECT_TRUE(v3.changed);
  EXPECT_EQ(v3.program.version, 3);
  EXPECT_EQ(v3.program.recipe, R"({"cmake_args":[],"target":"app"})");
}

TEST_P(StoreTest, GetListAndRemove) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(must(store->get("missing")));
  must(store->upsert("b", k_sha_a, k_recipe));
  must(store->upsert("a", k_sha_b, k_recipe));
  auto all = must(store->list());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "a");
  EXPECT_EQ(all[1].name, "b");
  EXPECT_NE(all[0].id, all[1].id);
  auto a = must(store->get("a"));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->source_sha256, k_sha_b);

  EXPECT_TRUE(must(store->remove("a")));
  EXPECT_FALSE(must(store->remove("a")));
  EXPECT_FALSE(must(store->get("a")));
  EXPECT_EQ(must(store->list()).size(), 1u);
  // A removed name can come back, as a new program.
  auto again = must(store->upsert("a", k_sha_b, k_recipe));
  EXPECT_TRUE(again.changed);
  EXPECT_EQ(again.program.version, 1);
  EXPECT_NE(again.program.id, a->id);
}

TEST_P(StoreTest, NamesAndTextAreStoredVerbatim) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  const std::string name = "it's a \"name\" with ? and $1 and ünïcode";
  const std::string log = "line 1\nline 2 with 'quotes' and \\ backslash";
  const Program p = must(store->upsert(name, k_sha_a, k_recipe)).program;
  must(store->claim(0, 1, 1));
  ASSERT_TRUE(must(store->finish(p.id, 1, Status::compile_error, log, 0, 0, std::nullopt)));
  auto got = must(store->get(name));
  ASSERT_TRUE(got);
  EXPECT_EQ(got->name, name);
  EXPECT_EQ(got->log, log);
  EXPECT_EQ(got->status, Status::compile_error);
}

TEST_P(StoreTest, ClaimTakesPendingProgramsUpToTheLimit) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 5; ++i) {
    must(store->upsert("p" + std::to_string(i), k_sha_a, k_recipe));
  }
  auto first = must(store->claim(0, 1, 3));
  ASSERT_EQ(first.size(), 3u);
  auto second = must(store->claim(0, 1, 3));
  ASSERT_EQ(second.size(), 2u);
  EXPECT_TRUE(must(store->claim(0, 1, 3)).empty());
  EXPECT_TRUE(must(store->claim(0, 1, 0)).empty());

  std::set<std::string> names;
  for (const auto& c : first) {
    names.insert(c.name);
    EXPECT_EQ(c.version, 1);
    EXPECT_EQ(c.recipe, k_recipe);
    EXPECT_EQ(c.source_sha256, k_sha_a);
  }
  for (const auto& c : second) {
    names.insert(c.name);
  }
  EXPECT_EQ(names.size(), 5u);
  for (const Program& p : must(store->list())) {
    EXPECT_EQ(p.status, Status::compiling);
    EXPECT_EQ(p.compiled_by, 0);
    EXPECT_EQ(p.compile_count, 1);
  }
}

TEST_P(StoreTest, ClaimTakesOnlyItsOwnShard) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 60; ++i) {
    must(store->upsert("p" + std::to_string(i), k_sha_a, k_recipe));
  }
  size_t total = 0;
  for (int worker = 0; worker < 3; ++worker) {
    auto claims = must(store->claim(worker, 3, 1000));
    total += claims.size();
    for (const auto& c : claims) {
      EXPECT_EQ(shard_of(c.id, 3), static_cast<uint32_t>(worker)) << c.id;
      auto p = must(store->get(c.name));
      EXPECT_EQ(p->compiled_by, worker);
    }
  }
  EXPECT_EQ(total, 60u);
}

TEST_P(StoreTest, ShardInSqlAgreesWithShardOf) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  std::vector<std::string> ids;
  for (int i = 0; i < 300; ++i) {
    ids.push_back(must(store->upsert("p" + std::to_string(i), k_sha_a, k_recipe)).program.id);
  }
  for (int64_t workers : {1, 2, 3, 7, 1000}) {
    std::set<std::string> seen;
    for (int64_t worker = 0; worker < workers; ++worker) {
      for (const std::string& id : must(store->shard_ids(worker, workers))) {
        EXPECT_EQ(shard_of(id, static_cast<uint32_t>(workers)), static_cast<uint32_t>(worker))
            << id << " of " << workers;
        EXPECT_TRUE(seen.insert(id).second) << id << " in two shards of " << workers;
      }
    }
    EXPECT_EQ(seen.size(), ids.size()) << "workers " << workers;
  }
  // About half of random keys are >= 2^63, where signed arithmetic on the
  // whole key would go wrong: the halves must cover those.
  int high = 0;
  for (const auto& id : ids) {
    high += *shard_key(id) >> 63 ? 1 : 0;
  }
  EXPECT_GT(high, 50);
}

TEST_P(StoreTest, ShardArgumentsAreChecked) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_FALSE(store->claim(0, 0, 1));
  EXPECT_FALSE(store->claim(2, 2, 1));
  EXPECT_FALSE(store->claim(-1, 2, 1));
  EXPECT_FALSE(store->claim(0, int64_t{1} << 31, 1));
  EXPECT_FALSE(store->reset_compiling(3, 3));
  EXPECT_FALSE(store->shard_ids(0, 0));
  EXPECT_FALSE(store->heartbeat_member(1, 1, "http://x"));
}

TEST_P(StoreTest, FinishRecordsTheResultOfTheClaimedVersion) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  const Program p = must(store->upsert("hello", k_sha_a, k_recipe)).program;
  // Not claimed yet: Pending, nothing to finish.
  EXPECT_FALSE(must(store->finish(p.id, 1, Status::success, "", 0, 0, std::string(k_sha_b))));
  ASSERT_EQ(must(store->claim(0, 1, 1)).size(), 1u);
  EXPECT_FALSE(must(store->finish(p.id, 2, Status::success, "", 0, 0, std::string(k_sha_b))));
  EXPECT_FALSE(must(store->finish("00000000-0000-4000-8000-000000000000", 1, Status::success, "", 0,
                                  0, std::nullopt)));
  EXPECT_TRUE(must(store->finish(p.id, 1, Status::success, "ok", 7, 2, std::string(k_sha_b))));
  auto done = must(store->get("hello"));
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, Status::success);
  EXPECT_EQ(done->log, "ok");
  EXPECT_EQ(done->cache_hits, 7);
  EXPECT_EQ(done->cache_misses, 2);
  EXPECT_EQ(done->binary_sha256, std::string(k_sha_b));
  EXPECT_EQ(done->compiled_by, 0);
  // Once: the program is no longer Compiling.
  EXPECT_FALSE(must(store->finish(p.id, 1, Status::system_error, "again", 0, 0, std::nullopt)));
  EXPECT_EQ(must(store->get("hello"))->status, Status::success);
}

TEST_P(StoreTest, FinishAcceptsOnlyResults) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  const Program p = must(store->upsert("hello", k_sha_a, k_recipe)).program;
  must(store->claim(0, 1, 1));
  EXPECT_FALSE(store->finish(p.id, 1, Status::pending, "", 0, 0, std::nullopt));
  EXPECT_FALSE(store->finish(p.id, 1, Status::compiling, "", 0, 0, std::nullopt));
  EXPECT_TRUE(must(store->finish(p.id, 1, Status::system_error, "oom", 0, 0, std::nullopt)));
  EXPECT_EQ(must(store->get("hello"))->status, Status::system_error);
}

TEST_P(StoreTest, AnEditDuringACompileDropsTheStaleResult) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  const Program v1 = must(store->upsert("hello", k_sha_a, k_recipe)).program;
  auto claims = must(store->claim(0, 1, 1));
  ASSERT_EQ(claims.size(), 1u);
  ASSERT_EQ(claims[0].version, 1);

  auto v2 = must(store->upsert("hello", k_sha_b, k_recipe));
  ASSERT_TRUE(v2.changed);
  EXPECT_EQ(v2.program.version, 2);
  EXPECT_EQ(v2.program.status, Status::pending);

  EXPECT_FALSE(must(store->finish(v1.id, 1, Status::success, "old", 1, 1, std::string(k_sha_a))));
  auto now = must(store->get("hello"));
  EXPECT_EQ(now->version, 2);
  EXPECT_EQ(now->status, Status::pending);
  EXPECT_FALSE(now->binary_sha256);
  EXPECT_EQ(now->log, "");

  // The new version is claimed and finished normally.
  auto again = must(store->claim(0, 1, 1));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].version, 2);
  EXPECT_EQ(again[0].source_sha256, k_sha_b);
  EXPECT_TRUE(must(store->finish(v1.id, 2, Status::success, "new", 0, 1, std::string(k_sha_b))));
  EXPECT_EQ(must(store->get("hello"))->compile_count, 2);
}

TEST_P(StoreTest, ResetCompilingReturnsTheShardsProgramsToPending) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 40; ++i) {
    must(store->upsert("p" + std::to_string(i), k_sha_a, k_recipe));
  }
  auto mine = must(store->claim(0, 2, 1000));
  auto theirs = must(store->claim(1, 2, 1000));
  ASSERT_EQ(mine.size() + theirs.size(), 40u);
  ASSERT_FALSE(mine.empty());
  ASSERT_FALSE(theirs.empty());
  // One finished before the restart: it stays Success.
  ASSERT_TRUE(must(store->finish(mine[0].id, 1, Status::success, "", 0, 0, std::string(k_sha_b))));

  EXPECT_EQ(must(store->reset_compiling(0, 2)), static_cast<int64_t>(mine.size() - 1));
  EXPECT_EQ(must(store->reset_compiling(0, 2)), 0);
  for (const Program& p : must(store->list())) {
    if (p.id == mine[0].id) {
      EXPECT_EQ(p.status, Status::success);
    } else if (shard_of(p.id, 2) == 0u) {
      EXPECT_EQ(p.status, Status::pending);
      EXPECT_FALSE(p.compiled_by);
    } else {
      EXPECT_EQ(p.status, Status::compiling);  // replica 1's, untouched
    }
  }
  // And they can be claimed again.
  EXPECT_EQ(must(store->claim(0, 2, 1000)).size(), mine.size() - 1);
}

TEST_P(StoreTest, BackToPendingOnlyFromSuccessOfTheCurrentVersion) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  const Program p = must(store->upsert("hello", k_sha_a, k_recipe)).program;
  EXPECT_FALSE(must(store->back_to_pending(p.id, 1)));  // Pending
  must(store->claim(0, 1, 1));
  EXPECT_FALSE(must(store->back_to_pending(p.id, 1)));  // Compiling
  ASSERT_TRUE(must(store->finish(p.id, 1, Status::success, "ok", 0, 0, std::string(k_sha_b))));
  EXPECT_FALSE(must(store->back_to_pending(p.id, 2)));  // not that version
  EXPECT_TRUE(must(store->back_to_pending(p.id, 1)));
  auto now = must(store->get("hello"));
  EXPECT_EQ(now->status, Status::pending);
  EXPECT_EQ(now->version, 1);
  EXPECT_FALSE(now->binary_sha256);
  EXPECT_EQ(must(store->claim(0, 1, 1)).size(), 1u);
}

TEST_P(StoreTest, MembersAreTheRecentHeartbeats) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(must(store->members(std::chrono::seconds(60))).empty());
  must(store->heartbeat_member(1, 2, "http://b:8080"));
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  must(store->heartbeat_member(0, 2, "http://a:8080"));
  must(store->heartbeat_member(0, 3, "http://a:8080"));  // the same replica, rescaled

  auto all = must(store->members(std::chrono::seconds(60)));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].worker_id, 0);
  EXPECT_EQ(all[0].workers, 3);
  EXPECT_EQ(all[0].url, "http://a:8080");
  EXPECT_EQ(all[1].worker_id, 1);
  EXPECT_EQ(all[1].url, "http://b:8080");
  EXPECT_GE(all[1].age, std::chrono::milliseconds(500));
  EXPECT_LT(all[0].age, all[1].age);

  auto recent = must(store->members(std::chrono::milliseconds(400)));
  ASSERT_EQ(recent.size(), 1u);
  EXPECT_EQ(recent[0].url, "http://a:8080");
}

TEST_P(StoreTest, AStoppedReplicaLeavesTheMembership) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  must(store->heartbeat_member(0, 2, "http://a:8080"));
  must(store->heartbeat_member(1, 2, "http://b:8080"));
  EXPECT_TRUE(must(store->remove_member(1, "http://b:8080")));
  EXPECT_FALSE(must(store->remove_member(1, "http://b:8080")));
  EXPECT_FALSE(must(store->remove_member(0, "http://b:8080")));  // not its row
  auto left = must(store->members(std::chrono::seconds(60)));
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].worker_id, 0);
}

TEST_P(StoreTest, TwoReplicasWithOneWorkerIdBothShowAsMembers) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  must(store->heartbeat_member(0, 1, "http://a:8080"));
  must(store->heartbeat_member(0, 1, "http://c:8080"));
  EXPECT_EQ(must(store->members(std::chrono::seconds(60))).size(), 2u);
}

TEST_P(StoreTest, ARemovedProgramsResultIsDropped) {
  auto store = open();
  ASSERT_NE(store, nullptr);
  const Program p = must(store->upsert("hello", k_sha_a, k_recipe)).program;
  ASSERT_EQ(must(store->claim(0, 1, 1)).size(), 1u);
  EXPECT_TRUE(must(store->remove("hello")));
  EXPECT_FALSE(must(store->finish(p.id, 1, Status::success, "", 0, 0, std::string(k_sha_b))));
  EXPECT_FALSE(must(store->get("hello")));
}

INSTANTIATE_TEST_SUITE_P(Postgres, PostgresStoreTest, ::testing::Values(Backend::postgres),
                         backend_name);
INSTANTIATE_TEST_SUITE_P(Backends, StoreTest, ::testing::Values(Backend::sqlite, Backend::postgres),
                         backend_name);

}  // namespace
}  // namespace kiln::service::test

namespace kiln::service::test {
namespace {

// A replica outlives a PostgreSQL restart: the call that finds its
// connection broken fails, the next one reconnects.
TEST(PostgresStore, ReconnectsAfterTheServerDroppedTheConnection) {
  std::string error;
  const std::string url = create_test_database(error);
  ASSERT_FALSE(url.empty()) << error;
  {
    auto store = open_store(url);
    ASSERT_TRUE(store) << store.error();
    must((*store)->upsert("hello", k_sha_a, k_recipe));
    ASSERT_EQ(terminate_connections(url), "");
    auto first = (*store)->get("hello");
    if (!first) {
      EXPECT_NE(first.error().find("postgresql"), std::string::npos) << first.error();
    }
    auto again = must((*store)->get("hello"));
    ASSERT_TRUE(again);
    EXPECT_EQ(again->version, 1);
  }
  drop_test_database(url);
}

}  // namespace
}  // namespace kiln::service::test
