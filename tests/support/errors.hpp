// Helpers for tests of error paths: the message a call throws, and substring checks on it.
#pragma once
#include <string>

#include "dino/core/error.hpp"

namespace dino::testing {

// The message of the dino::Error that f throws ("" if it throws none).
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace dino::testing
