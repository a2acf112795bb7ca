#include "kiln/storage/entry.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>

#include "kiln/util/hash.hpp"

namespace kiln::storage {
namespace {

std::string random_bytes(std::mt19937_64& rng, size_t n) {
  std::string out(n, '\0');
  for (char& c : out) {
    c = static_cast<char>(rng() & 0xff);
  }
  return out;
}

std::string compressible(size_t n) {
  std::string out;
  while (out.size() < n) {
    out += "int main() { return 42; } // object code\n";
  }
  out.resize(n);
  return out;
}

void set_u64(std::string& bytes, size_t offset, uint64_t v) {
  for (int i = 0; i < 8; ++i) {
    bytes[offset + static_cast<size_t>(i)] = static_cast<char>(static_cast<uint8_t>(v >> (8 * i)));
  }
}

// Recomputes the trailing checksum, so a test can forge an entry whose damage
// only the structural checks can find.
void reseal(std::string& bytes) {
  size_t body = bytes.size() - 8;
  set_u64(bytes, body, util::checksum64(std::string_view(bytes).substr(0, body)));
}

TEST(EntryTest, RoundTripsAtEveryLevel) {
  std::mt19937_64 rng(1);
  const std::string payloads[] = {"", "x", compressible(100000), random_bytes(rng, 70000)};
  for (int level : {0, 1, 3, 19, -5}) {
    for (const std::string& payload : payloads) {
      for (EntryKind kind : {EntryKind::result, EntryKind::manifest}) {
        std::string entry = encode_entry(kind, payload, level);
        auto decoded = decode_entry(entry, kind);
        ASSERT_TRUE(decoded) << "level " << level << ": " << to_string(decoded.error());
        EXPECT_EQ(*decoded, payload);
      }
    }
  }
}

TEST(EntryTest, HeaderLayoutIsAsDocumented) {
  std::string payload = compressible(5000);
  std::string stored = encode_entry(EntryKind::manifest, payload, 0);
  ASSERT_EQ(stored.size(), 24 + payload.size() + 8);
  EXPECT_EQ(stored.substr(0, 4), "KLN1");
  EXPECT_EQ(static_cast<uint8_t>(stored[4]), k_entry_version);
  EXPECT_EQ(static_cast<uint8_t>(stored[5]), 2);
  EXPECT_EQ(static_cast<uint8_t>(stored[6]), 0);
  EXPECT_EQ(static_cast<uint8_t>(stored[7]), 0);
  EXPECT_EQ(static_cast<uint8_t>(stored[8]), 5000 & 0xff);
  EXPECT_EQ(static_cast<uint8_t>(stored[9]), 5000 >> 8);
  EXPECT_EQ(stored.substr(24, payload.size()), payload);

  std::string compressed = encode_entry(EntryKind::result, payload, 3);
  EXPECT_EQ(static_cast<uint8_t>(compressed[5]), 1);
  EXPECT_EQ(static_cast<uint8_t>(compressed[6]), 1);
  EXPECT_LT(compressed.size(), payload.size());
}

TEST(EntryTest, WrongKindIsRejected) {
  std::string entry = encode_entry(EntryKind::result, "payload", 1);
  auto decoded = decode_entry(entry, EntryKind::manifest);
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error(), EntryError::wrong_kind);
}

TEST(EntryTest, BadMagicIsRejected) {
  std::string entry = encode_entry(EntryKind::result, "payload", 1);
  entry[0] = 'X';
  auto decoded = decode_entry(entry, EntryKind::result);
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error(), EntryError::bad_magic);
}

TEST(EntryTest, UnknownVersionIsRejected) {
  std::string entry = encode_entry(EntryKind::result, "payload", 1);
  entry[4] = static_cast<char>(k_entry_version + 1);
  reseal(entry);
  auto decoded = decode_entry(entry, EntryKind::result);
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error(), EntryError::bad_version);
}

TEST(EntryTest, FlippedPayloadByteIsABadChecksum) {
  std::string payload = compressible(3000);
  for (int level : {0, 3}) {
    std::string entry = encode_entry(EntryKind::result, payload, level);
    for (size_t i = 24; i < entry.size(); ++i) {
      std::string damaged = entry;
      damaged[i] ^= 0x10;
      auto decoded = decode_entry(damaged, EntryKind::result);
      ASSERT_FALSE(decoded) << "byte " << i;
      EXPECT_EQ(decoded.error(), EntryError::bad_checksum) << "byte " << i;
    }
  }
}

TEST(EntryTest, AnyFlippedBitIsAnError) {
  std::string entry = encode_entry(EntryKind::manifest, compressible(500), 1);
  for (size_t i = 0; i < entry.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = entry;
      damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
      EXPECT_FALSE(decode_entry(damaged, EntryKind::manifest)) << "byte " << i << " bit " << bit;
    }
  }
}

TEST(EntryTest, EveryTruncationIsRejected) {
  for (int level : {0, 1}) {
    std::string entry = encode_entry(EntryKind::result, compressible(2000), level);
    for (size_t n = 0; n < entry.size(); ++n) {
      auto decoded = decode_entry(std::string_view(entry).substr(0, n), EntryKind::result);
      ASSERT_FALSE(decoded) << "length " << n;
      EXPECT_EQ(decoded.error(), EntryError::truncated) << "length " << n;
    }
  }
}

TEST(EntryTest, TrailingBytesAreRejected) {
  std::string entry = encode_entry(EntryKind::result, "payload", 1);
  entry += "extra";
  EXPECT_FALSE(decode_entry(entry, EntryKind::result));
}

TEST(EntryTest, LyingSizeFieldsWithAValidChecksumAreRejected) {
  std::string payload = compressible(4000);

  // Uncompressed entry claiming a different original size.
  std::string plain = encode_entry(EntryKind::result, payload, 0);
  set_u64(plain, 8, payload.size() + 1);
  reseal(plain);
  auto decoded = decode_entry(plain, EntryKind::result);
  ASSERT_FALSE(decoded);
  EXPECT_EQ(decoded.error(), EntryError::bad_payload);

  // zstd entry claiming a different original size, smaller or larger.
  for (uint64_t claimed : {uint64_t{0}, uint64_t{3999}, uint64_t{4001}, uint64_t{1} << 20,
                           (uint64_t{4} << 30) + 1, ~uint64_t{0}}) {
    std::string compressed = encode_entry(EntryKind::result, payload, 3);
    set_u64(compressed, 8, claimed);
    reseal(compressed);
    decoded = decode_entry(compressed, EntryKind::result);
    ASSERT_FALSE(decoded) << claimed;
    EXPECT_EQ(decoded.error(), EntryError::bad_payload) << claimed;
  }

  // Stored size beyond the buffer, including values that overflow offsets.
  for (uint64_t claimed : {uint64_t{4001}, uint64_t{1} << 40, ~uint64_t{0}, ~uint64_t{0} - 23}) {
    std::string damaged = encode_entry(EntryKind::result, payload, 0);
    set_u64(damaged, 16, claimed);
    EXPECT_FALSE(decode_entry(damaged, EntryKind::result)) << claimed;
  }

  // Unknown compression method, reserved byte set.
  std::string method = encode_entry(EntryKind::result, payload, 0);
  method[6] = 7;
  reseal(method);
  EXPECT_FALSE(decode_entry(method, EntryKind::result));
  std::string reserved = encode_entry(EntryKind::result, payload, 0);
  reserved[7] = 1;
  reseal(reserved);
  EXPECT_FALSE(decode_entry(reserved, EntryKind::result));
}

TEST(EntryTest, RandomGarbageNeverDecodes) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = random_bytes(rng, rng() % 300);
    if (i % 2 == 0 && bytes.size() >= 8) {
      std::memcpy(bytes.data(), "KLN1", 4);
      bytes[4] = static_cast<char>(k_entry_version);
      bytes[5] = 1;
      bytes[7] = 0;
    }
    EXPECT_FALSE(decode_entry(bytes, EntryKind::result));
  }
}

TEST(EntryTest, ForgedZstdPayloadsNeverCrash) {
  // Damage inside the zstd frame, resealed so that the checksum passes: the
  // decoder sees arbitrary frames. Either an error or the claimed size.
  std::mt19937_64 rng(7);
  std::string payload = compressible(20000) + random_bytes(rng, 3000);
  std::string entry = encode_entry(EntryKind::result, payload, 3);
  for (int i = 0; i < 5000; ++i) {
    std::string forged = entry;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      size_t at = 24 + rng() % (forged.size() - 32);
      forged[at] = static_cast<char>(rng() & 0xff);
    }
    reseal(forged);
    auto decoded = decode_entry(forged, EntryKind::result);
    if (decoded) {
      EXPECT_EQ(decoded->size(), payload.size());
    }
  }
  for (int i = 0; i < 2000; ++i) {
    std::string body = random_bytes(rng, rng() % 200);
    std::string forged = encode_entry(EntryKind::result, body, 0);
    forged[6] = 1;  // claim zstd
    set_u64(forged, 8, rng() % (1 << 20));
    reseal(forged);
    EXPECT_FALSE(decode_entry(forged, EntryKind::result));
  }
}

// Streams a checked entry with pieces handed on as they come.
StreamEnd stream_all(const CheckedEntry& entry, std::string* out, size_t* pieces = nullptr) {
  return stream_payload(entry, [&](std::string_view piece) {
    EXPECT_LE(piece.size(), k_stream_chunk);
    EXPECT_FALSE(piece.empty());
    out->append(piece);
    if (pieces) {
      ++*pieces;
    }
    return true;
  });
}

TEST(EntryTest, StreamingGivesThePayloadInBoundedPieces) {
  std::mt19937_64 rng(5);
  // Larger than several pieces, so the stream has to refill its buffer.
  const std::string payloads[] = {"", "x", compressible(3 * k_stream_chunk + 17),
                                  random_bytes(rng, k_stream_chunk + 1)};
  for (int level : {0, 1, 19}) {
    for (const std::string& payload : payloads) {
      std::string entry = encode_entry(EntryKind::result, payload, level);
      auto checked = check_entry(entry, EntryKind::result);
      ASSERT_TRUE(checked) << to_string(checked.error());
      EXPECT_EQ(checked->compressed, level != 0);
      EXPECT_EQ(checked->payload_size, payload.size());
      std::string out;
      size_t pieces = 0;
      ASSERT_EQ(stream_all(*checked, &out, &pieces), StreamEnd::done) << level;
      EXPECT_EQ(out, payload);
      EXPECT_EQ(pieces, (payload.size() + k_stream_chunk - 1) / k_stream_chunk) << level;
    }
  }
}

TEST(EntryTest, StreamingStopsWhenTheSinkSaysSo) {
  std::string payload = compressible(4 * k_stream_chunk);
  for (int level : {0, 1}) {
    std::string entry = encode_entry(EntryKind::result, payload, level);
    auto checked = check_entry(entry, EntryKind::result);
    ASSERT_TRUE(checked);
    int calls = 0;
    EXPECT_EQ(stream_payload(*checked, [&](std::string_view) { return ++calls < 2; }),
              StreamEnd::stopped);
    EXPECT_EQ(calls, 2);
  }
}

TEST(EntryTest, CheckRefusesWhatDecodeRefuses) {
  std::string entry = encode_entry(EntryKind::result, compressible(9000), 1);
  EXPECT_TRUE(check_entry(entry, EntryKind::result));
  EXPECT_EQ(check_entry(entry, EntryKind::manifest).error(), EntryError::wrong_kind);
  for (size_t at : {size_t{0}, size_t{5}, size_t{30}, entry.size() - 1}) {
    std::string damaged = entry;
    damaged[at] = static_cast<char>(damaged[at] ^ 0x10);
    EXPECT_FALSE(check_entry(damaged, EntryKind::result)) << at;
  }
  EXPECT_FALSE(check_entry(entry.substr(0, entry.size() - 1), EntryKind::result));
}

TEST(EntryTest, CheckCanSkipTheChecksumOfBytesCheckedBefore) {
  std::string entry = encode_entry(EntryKind::result, compressible(9000), 1);
  entry[entry.size() - 1] = static_cast<char>(entry[entry.size() - 1] ^ 0x01);
  EXPECT_EQ(check_entry(entry, EntryKind::result).error(), EntryError::bad_checksum);
  auto unverified = check_entry(entry, EntryKind::result, /*verify_checksum=*/false);
  ASSERT_TRUE(unverified);
  EXPECT_EQ(unverified->payload_size, 9000u);
  // The frame itself is still checked.
  EXPECT_FALSE(check_entry(entry, EntryKind::manifest, false));
  EXPECT_FALSE(check_entry(entry.substr(0, 20), EntryKind::result, false));
}

TEST(EntryTest, StreamingALyingSizeIsABadPayload) {
  // A good checksum over a frame that decodes to more or fewer bytes than the
  // header claims: the stream reports it, and never hands on more than claimed.
  std::string payload = compressible(3 * k_stream_chunk);
  for (uint64_t claimed :
       {uint64_t{0}, uint64_t{1000}, payload.size() - 1, payload.size() + 1, uint64_t{1} << 30}) {
    std::string entry = encode_entry(EntryKind::result, payload, 3);
    set_u64(entry, 8, claimed);
    reseal(entry);
    auto checked = check_entry(entry, EntryKind::result);
    ASSERT_TRUE(checked) << claimed;
    std::string out;
    EXPECT_EQ(stream_all(*checked, &out), StreamEnd::bad_payload) << claimed;
    EXPECT_LE(out.size(), claimed + k_stream_chunk) << claimed;
  }
}

TEST(EntryTest, StreamingForgedZstdFramesNeverCrash) {
  std::mt19937_64 rng(11);
  std::string payload = compressible(40000) + random_bytes(rng, 3000);
  std::string entry = encode_entry(EntryKind::result, payload, 3);
  int bad = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string forged = entry;
    for (int f = 0; f < 1 + static_cast<int>(rng() % 4); ++f) {
      size_t at = 24 + rng() % (forged.size() - 32);
      forged[at] = static_cast<char>(rng() & 0xff);
    }
    if (rng() % 3 == 0) {
      // Cut the frame short (keeping the frame header consistent).
      size_t keep = 24 + rng() % (forged.size() - 32);
      forged.resize(keep);
      set_u64(forged, 16, keep - 24);
      forged.append(8, '\0');
    }
    reseal(forged);
    auto checked = check_entry(forged, EntryKind::result);
    if (!checked) {
      ++bad;
      continue;
    }
    std::string out;
    if (stream_all(*checked, &out) == StreamEnd::done) {
      EXPECT_EQ(out.size(), payload.size());
    } else {
      ++bad;
    }
  }
  EXPECT_GT(bad, 0);
}

TEST(EntryTest, ErrorsHaveNames) {
  for (EntryError e : {EntryError::truncated, EntryError::bad_magic, EntryError::bad_version,
                       EntryError::wrong_kind, EntryError::bad_checksum, EntryError::bad_payload}) {
    EXPECT_FALSE(to_string(e).empty());
    EXPECT_NE(to_string(e), "unknown");
  }
}

}  // namespace
}  // namespace kiln::storage
