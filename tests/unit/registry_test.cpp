#include "kiln/config/registry.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>

#include "kiln/config/doc_table.hpp"
#include "kiln/config/load.hpp"
#include "kiln/config/value.hpp"
#include "kiln/util/file.hpp"

namespace kiln::config {
namespace {

Registry sample_registry() {
  Registry r;
  r.add(KeyDecl("flag", "T_FLAG", Type::boolean, "true", "a flag")
            .in_section("general")
            .owned_by("a"));
  r.add(KeyDecl("limit", "T_LIMIT", Type::size, "5G", "a size")
            .at_least(0)
            .in_section("general")
            .owned_by("a"));
  r.add(KeyDecl("order", "T_ORDER", Type::list, "", "an order")
            .in_section("remote")
            .owned_by("b")
            .one_of({"x", "y"}));
  r.add(KeyDecl("level", "T_LEVEL", Type::integer, "1", "a level")
            .between(-5, 19)
            .in_section("general")
            .owned_by("b"));
  r.add(KeyDecl("mode", "T_MODE", Type::choice, "copy", "a mode")
            .in_section("remote")
            .owned_by("b")
            .one_of({"copy", "link"}));
  r.add(KeyDecl("dir", "T_DIR", Type::string, "", "a dir")
            .in_section("general")
            .owned_by("b")
            .doc_default_is("next to `x`")
            .checked_by([](Value& v) -> std::optional<std::string> {
              auto& s = std::get<std::string>(v);
              if (!s.empty() && s.front() != '/') {
                return "must be an absolute path";
              }
              return std::nullopt;
            }));
  r.add(KeyDecl("token", "T_TOKEN", Type::string, "", "a secret")
            .in_section("remote")
            .owned_by("b")
            .redacted(Redact::secret));
  return r;
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-registry-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    m_dir = tmpl;
    m_file = m_dir + "/kiln.toml";
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(m_dir, ec);
  }
  Getenv env() const {
    return [this](const char* name) -> const char* {
      auto it = m_env.find(name);
      return it == m_env.end() ? nullptr : it->second.c_str();
    };
  }

  Registry m_registry = sample_registry();
  std::map<std::string, std::string> m_env;
  std::string m_dir;
  std::string m_file;
};

TEST_F(RegistryTest, KeysAreGroupedBySectionInDeclarationOrder) {
  std::vector<std::string> names;
  for (const auto& k : m_registry.keys()) {
    names.push_back(k.name);
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"flag", "limit", "level", "dir", "order", "mode", "token"}));
  EXPECT_EQ(m_registry.sections(), (std::vector<std::string>{"general", "remote"}));
  EXPECT_NE(m_registry.find("mode"), nullptr);
  EXPECT_EQ(m_registry.find("nope"), nullptr);
}

TEST_F(RegistryTest, DuplicatesAndBadDefaultsAreProgrammingErrors) {
  EXPECT_THROW(m_registry.add(KeyDecl("flag", "T_OTHER", Type::string, "", "")), std::logic_error);
  EXPECT_THROW(m_registry.add(KeyDecl("other", "T_FLAG", Type::string, "", "")), std::logic_error);
  EXPECT_THROW(m_registry.add(KeyDecl("n", "T_N", Type::integer, "7", "").between(0, 5)),
               std::logic_error);
}

TEST_F(RegistryTest, ParsesEachType) {
  const auto& r = m_registry;
  EXPECT_EQ(parse_value(*r.find("flag"), "off"), Value{false});
  EXPECT_EQ(parse_value(*r.find("flag"), "yes"), Value{true});
  EXPECT_EQ(parse_value(*r.find("limit"), "2M"), Value{int64_t{2} * 1024 * 1024});
  EXPECT_EQ(parse_value(*r.find("level"), "-5"), Value{int64_t{-5}});
  EXPECT_EQ(parse_value(*r.find("mode"), "link"), Value{std::string("link")});
  const Value y_x{std::vector<std::string>{"y", "x"}};
  EXPECT_EQ(parse_value(*r.find("order"), " y, x ,"), y_x);
  EXPECT_EQ(parse_value(*r.find("order"), ""), Value{std::vector<std::string>{}});

  auto bad_bool = parse_value(*r.find("flag"), "maybe");
  ASSERT_FALSE(bad_bool);
  EXPECT_EQ(bad_bool.error(), "expected a boolean (true/false), got \"maybe\"");
  auto bad_level = parse_value(*r.find("level"), "20");
  ASSERT_FALSE(bad_level);
  EXPECT_EQ(bad_level.error(), "expected an integer from -5 to 19, got \"20\"");
  EXPECT_FALSE(parse_value(*r.find("limit"), "-1"));
  EXPECT_FALSE(parse_value(*r.find("limit"), "5X"));
  auto bad_mode = parse_value(*r.find("mode"), "symlink");
  ASSERT_FALSE(bad_mode);
  EXPECT_EQ(bad_mode.error(), "expected copy or link, got \"symlink\"");
  EXPECT_FALSE(parse_value(*r.find("order"), "x,z"));
  auto bad_dir = parse_value(*r.find("dir"), "rel");
  ASSERT_FALSE(bad_dir);
  EXPECT_EQ(bad_dir.error(), "must be an absolute path, got \"rel\"");
}

TEST_F(RegistryTest, DisplayRedactsAndFormats) {
  const auto& r = m_registry;
  EXPECT_EQ(display_value(*r.find("limit"), Value{int64_t{5} << 30}), "5.0 GiB");
  EXPECT_EQ(display_value(*r.find("token"), Value{std::string("s3cret")}), "(set)");
  EXPECT_EQ(display_value(*r.find("token"), Value{std::string()}), "");
  EXPECT_EQ(display_value(*r.find("order"), Value{std::vector<std::string>{"x", "y"}}), "x,y");
}

TEST_F(RegistryTest, DefaultsThenFileThenEnvironment) {
  ASSERT_TRUE(util::write_file(m_file, "limit = \"1G\"\nlevel = 3\norder = [\"y\"]\n"));
  m_env["T_LEVEL"] = "4";
  auto loaded = load(m_registry, m_file, env());
  EXPECT_TRUE(loaded.errors.empty());
  const Values& v = loaded.values;
  EXPECT_TRUE(v.get_bool("flag"));
  EXPECT_EQ(v.origin("flag"), Origin::default_value);
  EXPECT_EQ(v.get_int("limit"), int64_t{1} << 30);
  EXPECT_EQ(v.origin("limit"), Origin::config_file);
  EXPECT_EQ(v.get_int("level"), 4);
  EXPECT_EQ(v.origin("level"), Origin::environment);
  EXPECT_EQ(v.get_list("order"), std::vector<std::string>{"y"});
  EXPECT_EQ(v.get_string("mode"), "copy");
  EXPECT_THROW((void)v.get_string("flag"), std::logic_error);
  EXPECT_THROW((void)v.get_bool("undeclared"), std::logic_error);
}

TEST_F(RegistryTest, ErrorsAreTypedAndKeepWhatCouldBeRead) {
  ASSERT_TRUE(
      util::write_file(m_file, "limit = \"lots\"\nmode = \"link\"\nnope = 1\nflag = 1.5\n"));
  m_env["T_LEVEL"] = "x";
  auto loaded = load(m_registry, m_file, env());
  ASSERT_EQ(loaded.errors.size(), 4u);
  std::map<std::string, Error> by_key;
  for (const auto& e : loaded.errors) {
    by_key[e.key] = e;
  }
  EXPECT_EQ(by_key["limit"].kind, ErrorKind::bad_value);
  EXPECT_EQ(to_string(by_key["limit"]),
            m_file + ": limit: expected a size such as 5G or 500M, got \"lots\"");
  EXPECT_EQ(by_key["nope"].kind, ErrorKind::unknown_key);
  EXPECT_EQ(to_string(by_key["nope"]), m_file + ": unknown key \"nope\"");
  EXPECT_EQ(by_key["flag"].kind, ErrorKind::bad_value);
  EXPECT_EQ(by_key["level"].origin, Origin::environment);
  EXPECT_EQ(to_string(by_key["level"]), "T_LEVEL: expected an integer from -5 to 19, got \"x\"");
  EXPECT_EQ(loaded.values.get_string("mode"), "link");
  EXPECT_EQ(loaded.values.get_int("limit"), int64_t{5} << 30);
  EXPECT_TRUE(loaded.values.get_bool("flag"));
}

TEST_F(RegistryTest, SyntaxErrorNamesTheLine) {
  ASSERT_TRUE(util::write_file(m_file, "flag = true\n\nnot toml\n"));
  m_env["T_FLAG"] = "false";
  auto loaded = load(m_registry, m_file, env());
  ASSERT_EQ(loaded.errors.size(), 1u);
  EXPECT_EQ(loaded.errors[0].kind, ErrorKind::syntax);
  EXPECT_EQ(to_string(loaded.errors[0]).rfind(m_file + ":3: ", 0), 0u)
      << to_string(loaded.errors[0]);
  EXPECT_FALSE(loaded.values.get_bool("flag"));
}

// The bug of issue 8: `kiln -o s3_use_ssl=false` wrote the string "false".
TEST_F(RegistryTest, SetInFileWritesTypedValues) {
  ASSERT_TRUE(set_in_file(m_registry, m_file, "flag", "off"));
  ASSERT_TRUE(set_in_file(m_registry, m_file, "level", "7"));
  ASSERT_TRUE(set_in_file(m_registry, m_file, "limit", " 10G"));
  ASSERT_TRUE(set_in_file(m_registry, m_file, "order", "y, x"));
  auto text = util::read_file(m_file);
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("flag = false"), std::string::npos) << *text;
  EXPECT_NE(text->find("level = 7"), std::string::npos) << *text;
  EXPECT_NE(text->find("limit = '10G'"), std::string::npos) << *text;
  EXPECT_NE(text->find("order = 'y,x'"), std::string::npos) << *text;
  auto loaded = load(m_registry, m_file, env());
  EXPECT_TRUE(loaded.errors.empty());
  EXPECT_FALSE(loaded.values.get_bool("flag"));
  EXPECT_EQ(loaded.values.get_int("limit"), int64_t{10} << 30);
  EXPECT_EQ(loaded.values.get_list("order"), (std::vector<std::string>{"y", "x"}));
}

TEST_F(RegistryTest, SetInFileRejectsBadInputAndLeavesTheFile) {
  ASSERT_TRUE(util::write_file(m_file, "level = 2\n"));
  auto unknown = set_in_file(m_registry, m_file, "nope", "1");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().kind, ErrorKind::unknown_key);
  EXPECT_EQ(to_string(unknown.error()), "unknown key \"nope\"");
  auto bad = set_in_file(m_registry, m_file, "flag", "maybe");
  ASSERT_FALSE(bad);
  EXPECT_EQ(to_string(bad.error()), "flag: expected a boolean (true/false), got \"maybe\"");
  EXPECT_EQ(*util::read_file(m_file), "level = 2\n");
}

TEST_F(RegistryTest, DocTablesAreGeneratedFromTheDeclarations) {
  std::string table = markdown_table(m_registry, "general");
  EXPECT_EQ(table,
            "| key | environment | default | meaning |\n"
            "| --- | --- | --- | --- |\n"
            "| `flag` | `T_FLAG` | `true` | a flag |\n"
            "| `limit` | `T_LIMIT` | `5G` | a size |\n"
            "| `level` | `T_LEVEL` | `1` | a level |\n"
            "| `dir` | `T_DIR` | next to `x` | a dir |\n");
  std::string doc =
      "# Title\n\nprose\n\n<!-- config-table: general -->\n| stale |\n"
      "<!-- end config-table -->\n\nmore prose\n<!-- config-table: gone -->\n"
      "<!-- end config-table -->\n";
  auto update = update_doc_tables(doc, m_registry);
  EXPECT_EQ(update.text, "# Title\n\nprose\n\n<!-- config-table: general -->\n" + table +
                             "<!-- end config-table -->\n\nmore prose\n"
                             "<!-- config-table: gone -->\n<!-- end config-table -->\n");
  EXPECT_EQ(update.missing_sections, std::vector<std::string>{"remote"});
  EXPECT_EQ(update.unknown_sections, std::vector<std::string>{"gone"});
}

}  // namespace
}  // namespace kiln::config
