// NumPy .npy files of 2-D float32 tables (spec A11: `--save_features` tables, read by np.load; never pickle),
// written atomically, and their reader for tests.
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/io/file.hpp"

namespace dino::io {

// The bytes of a .npy file (format 1.0) holding a C-order little-endian float32 array [rows, cols]: magic
// "\x93NUMPY", version 1 0, uint16 header length, the header dict as np.save writes it padded with spaces and
// one '\n' so the data starts at a multiple of 64 bytes, then the values. data may be null when rows*cols = 0.
inline std::string npy_f32_bytes(std::int64_t rows, std::int64_t cols, const float* data) {
  DINO_CHECK(rows >= 0 && cols >= 0, "npy: a table shape must be non-negative, got (", rows, ", ", cols, ")");
  DINO_CHECK(cols == 0 || rows <= std::numeric_limits<std::int64_t>::max() / 4 / cols,
             "npy: the table shape (", rows, ", ", cols, ") is too large");
  const std::size_t count = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
  DINO_CHECK(count == 0 || data != nullptr, "npy: no data given for a (", rows, ", ", cols, ") table");
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                     std::to_string(cols) + "), }";
  const std::size_t unpadded = 10 + dict.size() + 1;
  dict.append((64 - unpadded % 64) % 64, ' ');
  dict.push_back('\n');
  const std::size_t header_len = dict.size();
  std::string out;
  out.reserve(10 + header_len + 4 * count);
  out.append("\x93NUMPY", 6);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header_len & 0xFF));
  out.push_back(static_cast<char>((header_len >> 8) & 0xFF));
  out += dict;
  // Byte by byte: '<f4' is little-endian whatever the host is.
  for (std::size_t i = 0; i < count; ++i) {
    std::uint32_t u;
    std::memcpy(&u, data + i, 4);
    for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((u >> (8 * b)) & 0xFF));
  }
  return out;
}

// Writes data [rows, cols] (C order) to path as a float32 .npy file, atomically (write_file_atomic, durable).
inline void write_npy_f32(const std::string& path, std::int64_t rows, std::int64_t cols, const float* data) {
  write_file_atomic(path, npy_f32_bytes(rows, cols, data));
}

// A 2-D float32 table read from a .npy file; data is C order, rows * cols values.
struct NpyTable {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::vector<float> data;
};

namespace npy_detail {
// Skips spaces; then expects the literal s. Used on the header dict, whose layout numpy writes in one way.
inline bool expect(const std::string& h, std::size_t& i, const std::string& s) {
  while (i < h.size() && h[i] == ' ') ++i;
  if (h.compare(i, s.size(), s) != 0) return false;
  i += s.size();
  return true;
}
inline bool parse_dim(const std::string& h, std::size_t& i, std::int64_t& v) {
  while (i < h.size() && h[i] == ' ') ++i;
  const std::size_t start = i;
  v = 0;
  while (i < h.size() && h[i] >= '0' && h[i] <= '9') {
    if (v > (std::numeric_limits<std::int64_t>::max() - 9) / 10) return false;
    v = v * 10 + (h[i] - '0');
    ++i;
  }
  return i > start;
}
}  // namespace npy_detail

// Reads a .npy file holding a 2-D little-endian float32 C-order array (versions 1.0, 2.0 and 3.0 of the
// format; the keys in np.save's order). Anything else, a truncated file or trailing bytes: dino::Error naming
// the file.
inline NpyTable read_npy_f32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DINO_CHECK(in, "cannot open '", path, "' for reading");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  DINO_CHECK(!in.bad(), "cannot read '", path, "'");
  DINO_CHECK(bytes.size() >= 10 && bytes.compare(0, 6, "\x93NUMPY", 6) == 0,
             "'", path, "' is not a .npy file (no \\x93NUMPY magic)");
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len = 0;
  std::size_t start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<std::size_t>(static_cast<unsigned char>(bytes[9])) << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    DINO_CHECK(bytes.size() >= 12, "'", path, "' is truncated inside its .npy preamble");
    for (int b = 0; b < 4; ++b) header_len |= static_cast<std::size_t>(static_cast<unsigned char>(bytes[8 + b])) << (8 * b);
    start = 12;
  } else {
    fail("'", path, "' has .npy format version ", major, ".", static_cast<int>(static_cast<unsigned char>(bytes[7])),
         "; expected 1.0, 2.0 or 3.0");
  }
  DINO_CHECK(bytes.size() - start >= header_len, "'", path, "' is truncated inside its .npy header");
  const std::string h = bytes.substr(start, header_len);
  std::size_t i = 0;
  std::int64_t rows = 0, cols = 0;
  const bool ok = npy_detail::expect(h, i, "{") && npy_detail::expect(h, i, "'descr':") &&
                  npy_detail::expect(h, i, "'<f4',") && npy_detail::expect(h, i, "'fortran_order':") &&
                  npy_detail::expect(h, i, "False,") && npy_detail::expect(h, i, "'shape':") &&
                  npy_detail::expect(h, i, "(") && npy_detail::parse_dim(h, i, rows) && npy_detail::expect(h, i, ",") &&
                  npy_detail::parse_dim(h, i, cols) && npy_detail::expect(h, i, ")") && npy_detail::expect(h, i, ",") &&
                  npy_detail::expect(h, i, "}");
  DINO_CHECK(ok, "'", path, "' is not a 2-D little-endian float32 C-order .npy table; its header is: ",
             h.substr(0, std::min<std::size_t>(h.size(), 120)));
  while (i < h.size() && h[i] == ' ') ++i;
  DINO_CHECK(i + 1 == h.size() && h[i] == '\n', "'", path, "' has a .npy header that does not end in spaces and '\\n'");
  DINO_CHECK(cols == 0 || rows <= std::numeric_limits<std::int64_t>::max() / 4 / cols,
             "'", path, "' declares the impossible shape (", rows, ", ", cols, ")");
  const std::size_t count = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
  const std::size_t data_at = start + header_len;
  DINO_CHECK(bytes.size() - data_at == 4 * count, "'", path, "' holds ", bytes.size() - data_at,
             " data bytes; its shape (", rows, ", ", cols, ") needs ", 4 * count);
  NpyTable t;
  t.rows = rows;
  t.cols = cols;
  t.data.resize(count);
  for (std::size_t k = 0; k < count; ++k) {
    std::uint32_t u = 0;
    for (int b = 0; b < 4; ++b) u |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[data_at + 4 * k + b])) << (8 * b);
    std::memcpy(&t.data[k], &u, 4);
  }
  return t;
}

}  // namespace dino::io
