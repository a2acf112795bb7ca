#pragma once

#include <string>
#include <string_view>

namespace kiln::cache {

// Where the compiler's stdout and stderr go, whether the compiler ran or a
// result was replayed. The client's sink writes file descriptors 1 and 2; a
// daemon's collects them for its client. Thread-compatible.
class OutputSink {
 public:
  virtual ~OutputSink() = default;
  virtual void out(std::string_view data) = 0;
  virtual void err(std::string_view data) = 0;
  // Whether the compiler, writing to this stderr itself, would be writing to
  // a terminal (its "auto" colour decision depends on it).
  virtual bool err_is_terminal() const = 0;
};

// Writes to this process's standard output and standard error.
class StandardOutputSink final : public OutputSink {
 public:
  void out(std::string_view data) override;
  void err(std::string_view data) override;
  bool err_is_terminal() const override;
};

// Keeps what is written, for a daemon to send on, and for tests.
class StringOutputSink final : public OutputSink {
 public:
  explicit StringOutputSink(bool terminal = false) : m_terminal(terminal) {}
  void out(std::string_view data) override { m_out.append(data); }
  void err(std::string_view data) override { m_err.append(data); }
  bool err_is_terminal() const override { return m_terminal; }
  const std::string& out_text() const { return m_out; }
  const std::string& err_text() const { return m_err; }

 private:
  bool m_terminal;
  std::string m_out;
  std::string m_err;
};

}  // namespace kiln::cache
