// dino::Error: the one exception type of the library. User mistakes (shapes, files, flags) and backend
// failures (CUDA, cuBLAS) become one line naming the culprit; nothing aborts.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace dino {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

// Throws dino::Error with the streamed arguments as message.
template <class... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(detail::concat(args...));
}

}  // namespace dino

// Checks a condition that user input can violate; the message arguments are streamed.
#define DINO_CHECK(cond, ...)                 \
  do {                                        \
    if (!(cond)) ::dino::fail(__VA_ARGS__);   \
  } while (0)
