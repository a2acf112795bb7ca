#pragma once

#include <string>

#include "kiln/util/expected.hpp"
#include "kiln/util/log.hpp"

namespace kiln::cli {

// A token given as its value or as the path of a file holding it (trailing
// whitespace dropped). The error says which file could not be read.
expected<std::string, std::string> token_value(const std::string& value_or_path);

// Splits "host:port" ("[v6]:port" too). False if it is not that.
bool split_listen(const std::string& listen, std::string* host, uint16_t* port);

// The daemon's JSON-lines log: into `file` (standard error when empty) from
// `level` (debug, info, warn or error) up, every line with the component's
// name. The error is the message for the user.
expected<util::Logger, std::string> open_daemon_log(const std::string& file,
                                                    const std::string& level,
                                                    const std::string& component);

// Blocks until SIGTERM or SIGINT arrives; returns the signal. Blocks both
// signals in the calling thread first: call it from main() before starting
// threads so that they inherit the mask.
void block_termination_signals();
int wait_for_termination();

}  // namespace kiln::cli
