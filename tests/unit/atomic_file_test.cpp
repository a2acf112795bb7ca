#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <string>

#include "kiln/util/file.hpp"
#include "temp_dir.hpp"

namespace kiln::util {
namespace {

class AtomicFileTest : public kiln::testing::TempDirTest {
 protected:
  // Number of entries in the test directory (temporary files included).
  size_t entries() const {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(m_dir)) {
      ++n;
    }
    return n;
  }
};

TEST_F(AtomicFileTest, PiecesAppearOnlyAtCommit) {
  std::string path = m_dir + "/out.o";
  ASSERT_TRUE(write_file(path, "old content"));
  AtomicFile file(path);
  ASSERT_TRUE(file.open());
  ASSERT_TRUE(file.write("new "));
  ASSERT_TRUE(file.write(std::string(100000, 'x')));
  // Until the commit, readers see the old file (and a temporary beside it).
  EXPECT_EQ(*read_file(path), "old content");
  EXPECT_EQ(entries(), 2u);
  ASSERT_TRUE(file.commit());
  EXPECT_EQ(*read_file(path), "new " + std::string(100000, 'x'));
  EXPECT_EQ(entries(), 1u);
}

TEST_F(AtomicFileTest, NoCommitLeavesNothingBehind) {
  std::string path = m_dir + "/out.o";
  ASSERT_TRUE(write_file(path, "old content"));
  {
    AtomicFile file(path);
    ASSERT_TRUE(file.open());
    ASSERT_TRUE(file.write("half"));
  }
  EXPECT_EQ(*read_file(path), "old content");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(AtomicFileTest, ErrorsAreErrnoValuesAndSticky) {
  AtomicFile file(m_dir + "/missing/dir/out.o");
  auto opened = file.open();
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error(), ENOENT);
  auto written = file.write("data");
  ASSERT_FALSE(written);
  EXPECT_EQ(written.error(), ENOENT);
  EXPECT_FALSE(file.commit());
  EXPECT_EQ(entries(), 0u);
}

TEST_F(AtomicFileTest, WriteBeforeOpenFails) {
  AtomicFile file(m_dir + "/out.o");
  EXPECT_FALSE(file.write("data"));
  EXPECT_FALSE(file.commit());
  EXPECT_EQ(entries(), 0u);
}

TEST_F(AtomicFileTest, RenameOntoADirectoryFailsAndCleansUp) {
  std::string path = m_dir + "/sub";
  std::filesystem::create_directories(path + "/child");
  AtomicFile file(path);
  ASSERT_TRUE(file.open());
  ASSERT_TRUE(file.write("data"));
  EXPECT_FALSE(file.commit());
  EXPECT_EQ(entries(), 1u);  // only the directory
}

TEST_F(AtomicFileTest, WriteFileAtomicStillReplacesWhole) {
  std::string path = m_dir + "/f";
  ASSERT_TRUE(write_file_atomic(path, "one"));
  ASSERT_TRUE(write_file_atomic(path, "two, longer"));
  EXPECT_EQ(*read_file(path), "two, longer");
  EXPECT_EQ(entries(), 1u);
}

}  // namespace
}  // namespace kiln::util
