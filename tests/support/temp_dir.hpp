// A fresh folder per test case, removed afterwards.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

namespace dino::testing {

struct TempDir {
  std::filesystem::path dir;
  explicit TempDir(const std::string& tag = "dino") {
    static int count = 0;
    dir = std::filesystem::temp_directory_path() /
          (tag + "-" + std::to_string(static_cast<long>(::getpid())) + "-" + std::to_string(count++));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path(const std::string& name) const { return (dir / name).string(); }
  std::string operator/(const std::string& name) const { return path(name); }
};

}  // namespace dino::testing
