#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::cache {

// What a compilation produced, stored under its result key.
enum class FileType : uint8_t { object = 0, depfile = 1, dwo = 2, gcno = 3, out = 4, err = 5 };

std::string_view to_string(FileType t);

struct Result {
  struct File {
    FileType type;
    std::string data;
  };
  std::vector<File> files;
  // Length of the depfile's first target when kiln may rewrite it on a hit
  // (no -MT/-MQ given: the target is the object path); 0 otherwise.
  uint64_t depfile_target_length = 0;
  // Non-zero when the object is stored beside the entry as a plain file
  // (file_link = hardlink or reflink); its size, checked on a hit. The object
  // File then has empty data.
  uint64_t external_object_size = 0;

  const File* find(FileType t) const;

  std::string serialize() const;
  // nullopt for a malformed payload.
  static std::optional<Result> parse(std::string_view payload);
};

}  // namespace kiln::cache
