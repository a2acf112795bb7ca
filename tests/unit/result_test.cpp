#include "kiln/cache/result.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

namespace kiln::cache {
namespace {

Result sample() {
  Result r;
  std::string object(5000, '\0');
  for (size_t i = 0; i < object.size(); ++i) {
    object[i] = static_cast<char>(i * 31);
  }
  r.files.push_back({FileType::object, object});
  r.files.push_back({FileType::depfile, "obj/a.o: a.c a.h\n"});
  r.files.push_back({FileType::dwo, "dwo"});
  r.files.push_back({FileType::gcno, ""});
  r.files.push_back({FileType::out, "stdout text"});
  r.files.push_back({FileType::err, "a.c:1: warning: x\n"});
  r.depfile_target_length = 7;
  return r;
}

TEST(ResultTest, RoundTrip) {
  Result r = sample();
  auto parsed = Result::parse(r.serialize());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->depfile_target_length, 7u);
  ASSERT_EQ(parsed->files.size(), r.files.size());
  for (size_t i = 0; i < r.files.size(); ++i) {
    EXPECT_EQ(parsed->files[i].type, r.files[i].type) << i;
    EXPECT_EQ(parsed->files[i].data, r.files[i].data) << i;
  }
  EXPECT_EQ(parsed->serialize(), r.serialize());
}

TEST(ResultTest, EmptyResultRoundTrips) {
  auto parsed = Result::parse(Result{}.serialize());
  ASSERT_TRUE(parsed);
  EXPECT_TRUE(parsed->files.empty());
  EXPECT_EQ(parsed->depfile_target_length, 0u);
}

TEST(ResultTest, FindByType) {
  Result r = sample();
  ASSERT_NE(r.find(FileType::depfile), nullptr);
  EXPECT_EQ(r.find(FileType::depfile)->data, "obj/a.o: a.c a.h\n");
  Result only_object;
  only_object.files.push_back({FileType::object, "o"});
  EXPECT_EQ(only_object.find(FileType::dwo), nullptr);
  EXPECT_EQ(only_object.find(FileType::object)->data, "o");
}

TEST(ResultTest, FileTypeNames) {
  EXPECT_EQ(to_string(FileType::object), "object");
  EXPECT_EQ(to_string(FileType::depfile), "depfile");
  EXPECT_EQ(to_string(FileType::dwo), "dwo");
  EXPECT_EQ(to_string(FileType::gcno), "gcno");
  EXPECT_EQ(to_string(FileType::out), "stdout");
  EXPECT_EQ(to_string(FileType::err), "stderr");
}

TEST(ResultTest, EveryTruncationAndTrailingByteIsRejected) {
  std::string bytes = sample().serialize();
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(Result::parse(std::string_view(bytes).substr(0, n))) << "length " << n;
  }
  EXPECT_FALSE(Result::parse(bytes + 'x'));
}

TEST(ResultTest, BadHeaderFieldsAreRejected) {
  std::string bytes = sample().serialize();
  std::string version = bytes;
  version[0] = 9;
  EXPECT_FALSE(Result::parse(version));

  // The file count is the u32 before the first file; find it from the size of
  // an empty result rather than hard-coding the header layout.
  const size_t count_offset = Result{}.serialize().size() - 4;
  ASSERT_EQ(static_cast<uint8_t>(bytes[count_offset]), sample().files.size());
  std::string count = bytes;
  count[count_offset] = 17;  // beyond the limit of 16
  EXPECT_FALSE(Result::parse(count));
  count[count_offset] = 7;  // more files than stored
  EXPECT_FALSE(Result::parse(count));

  // Unknown file type.
  const size_t type_offset = count_offset + 4;
  std::string type = bytes;
  ASSERT_EQ(type[type_offset], static_cast<char>(FileType::object));
  type[type_offset] = k_last_file_type + 1;
  EXPECT_FALSE(Result::parse(type));

  // A data length past the end.
  std::string length = bytes;
  length[type_offset + 1 + 7] = 1;
  EXPECT_FALSE(Result::parse(length));
}

TEST(ResultTest, ExternalObjectSizeRoundTrips) {
  Result r;
  r.files.push_back({FileType::object, ""});
  r.external_object_size = 123456789;
  auto parsed = Result::parse(r.serialize());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->external_object_size, 123456789u);
  EXPECT_EQ(Result::parse(Result{}.serialize())->external_object_size, 0u);
}

TEST(ResultTest, DepfileTargetLengthMustFitTheDepfile) {
  Result r;
  r.files.push_back({FileType::depfile, "a.o: a.c\n"});
  r.depfile_target_length = 9;
  EXPECT_TRUE(Result::parse(r.serialize()));
  r.depfile_target_length = 10;
  EXPECT_FALSE(Result::parse(r.serialize()));
  Result no_depfile;
  no_depfile.files.push_back({FileType::object, "0123456789"});
  no_depfile.depfile_target_length = 3;
  EXPECT_FALSE(Result::parse(no_depfile.serialize()));
}

TEST(ResultTest, RandomMutationsNeverCrash) {
  std::mt19937_64 rng(3);
  std::string bytes = sample().serialize();
  int rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string mutated = bytes;
    // Mutate within the header and the first file's header most of the time.
    size_t span = iter % 2 ? 40 : mutated.size();
    for (int e = 0; e < 1 + static_cast<int>(rng() % 3); ++e) {
      size_t pos = rng() % span;
      mutated[pos] = static_cast<char>(rng());
    }
    if (rng() % 4 == 0) {
      mutated.resize(rng() % mutated.size());
    }
    auto parsed = Result::parse(mutated);
    if (!parsed) {
      ++rejected;
      continue;
    }
    EXPECT_LE(parsed->files.size(), 16u);
    const Result::File* d = parsed->find(FileType::depfile);
    EXPECT_LE(parsed->depfile_target_length, d ? d->data.size() : 0);
  }
  EXPECT_GT(rejected, 0);
}

// Records what a decoder hands on, to compare with Result::parse.
class RecordingSink : public ResultSink {
 public:
  bool header(uint64_t depfile_target_length, uint64_t external_object_size) override {
    result.depfile_target_length = depfile_target_length;
    result.external_object_size = external_object_size;
    return true;
  }
  bool begin_file(FileType type, uint64_t size) override {
    result.files.push_back({type, {}});
    expected_size = size;
    return stop_at_file < 0 || static_cast<int>(result.files.size()) <= stop_at_file;
  }
  bool file_data(std::string_view piece) override {
    EXPECT_FALSE(piece.empty());
    result.files.back().data.append(piece);
    return true;
  }
  bool end_file() override {
    EXPECT_EQ(result.files.back().data.size(), expected_size);
    return true;
  }

  Result result;
  uint64_t expected_size = 0;
  int stop_at_file = -1;
};

TEST(ResultTest, DecoderGivesTheSameResultForAnySplit) {
  std::mt19937_64 rng(9);
  const std::string bytes = sample().serialize();
  for (int iter = 0; iter < 500; ++iter) {
    RecordingSink sink;
    ResultDecoder decoder(sink);
    size_t at = 0;
    while (at < bytes.size()) {
      size_t n = iter == 0 ? 1 : 1 + rng() % (iter % 2 ? 7 : 3000);
      ASSERT_TRUE(decoder.feed(std::string_view(bytes).substr(at, n))) << iter;
      at += n;
    }
    ASSERT_TRUE(decoder.complete()) << iter;
    EXPECT_EQ(sink.result.serialize(), bytes) << iter;
  }
}

TEST(ResultTest, DecoderIsIncompleteUntilTheLastByte) {
  const std::string bytes = sample().serialize();
  for (size_t cut = 0; cut < bytes.size(); cut += 97) {
    RecordingSink sink;
    ResultDecoder decoder(sink);
    EXPECT_TRUE(decoder.feed(std::string_view(bytes).substr(0, cut)));
    EXPECT_FALSE(decoder.complete()) << cut;
  }
  RecordingSink sink;
  ResultDecoder decoder(sink);
  EXPECT_FALSE(decoder.feed(bytes + "x"));
  EXPECT_FALSE(decoder.complete());
  EXPECT_FALSE(decoder.sink_stopped());
}

TEST(ResultTest, DecoderStopsWhenTheSinkSaysSo) {
  RecordingSink sink;
  sink.stop_at_file = 2;
  ResultDecoder decoder(sink);
  EXPECT_FALSE(decoder.feed(sample().serialize()));
  EXPECT_TRUE(decoder.sink_stopped());
  EXPECT_FALSE(decoder.complete());
  EXPECT_EQ(sink.result.files.size(), 3u);
  EXPECT_FALSE(decoder.feed("more"));
}

TEST(ResultTest, DecoderRefusesAHugeClaimedFileWithoutAllocating) {
  Result r;
  r.files.push_back({FileType::object, "tiny"});
  std::string bytes = r.serialize();
  // The object's size field follows the 24-byte header and its type byte.
  uint64_t huge = uint64_t{1} << 62;
  std::memcpy(bytes.data() + 25, &huge, sizeof huge);
  EXPECT_FALSE(Result::parse(bytes));
}

}  // namespace
}  // namespace kiln::cache
