#include "kiln/storage/storage.hpp"

#include <gtest/gtest.h>

#include <string>

namespace kiln::storage {
namespace {

TEST(ErrorTest, KeyIsFormattedOnlyWhereShown) {
  Error e = Error::naming(Failure::error, "GET http://h/c/", "ab/cd/abcdR", " returned HTTP 500");
  EXPECT_EQ(e.message, "GET http://h/c/ returned HTTP 500");
  EXPECT_EQ(e.text(), "GET http://h/c/ab/cd/abcdR returned HTTP 500");
  EXPECT_EQ(e.text("<key>"), "GET http://h/c/<key> returned HTTP 500");
  Error plain = Error::plain(Failure::timeout, "timed out");
  EXPECT_EQ(plain.text("<key>"), "timed out");
  EXPECT_TRUE(Error{}.empty());
}

TEST(ErrorTest, KeyAtTheEdges) {
  Error first = Error::naming(Failure::error, "", "ab/cd/abcdR", " is bad");
  EXPECT_EQ(first.text(), "ab/cd/abcdR is bad");
  Error last = Error::naming(Failure::error, "no such entry: ", "abcdR", "");
  EXPECT_EQ(last.text("<key>"), "no such entry: <key>");
}

TEST(StorageKeyTest, NameAndRelativePath) {
  Key key;
  key.kind = EntryKind::manifest;
  std::string name = key.name();
  ASSERT_EQ(name.size(), 65u);
  EXPECT_EQ(name.back(), 'M');
  EXPECT_EQ(key.relative_path(), name.substr(0, 2) + "/" + name.substr(2, 2) + "/" + name);
  auto parsed = Key::parse(name);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->kind, EntryKind::manifest);
  EXPECT_FALSE(Key::parse(name.substr(1)));
}

}  // namespace
}  // namespace kiln::storage
