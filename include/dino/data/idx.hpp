// MNIST-format idx files (torchvision's MNIST / FashionMNIST raw files, spec A2), plain or gzip-compressed:
// whole-file reading with zlib, strict validation of magic, dims and payload size, and read_idx_pair, which
// turns one images file and one labels file into an ImageSet of grey 8-bit images.
#pragma once
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/data/image.hpp"

namespace dino {

namespace data_detail {

// The whole file in one read: one syscall-sized copy is what makes 60k images load in well under a second.
inline std::vector<std::uint8_t> read_plain_file(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  DINO_CHECK(!ec && std::filesystem::exists(status), path, ": file not found");
  DINO_CHECK(std::filesystem::is_regular_file(status), path, ": expected a regular file");
  std::FILE* f = std::fopen(path.c_str(), "rb");
  DINO_CHECK(f != nullptr, path, ": cannot open (", std::strerror(errno), ")");
  std::vector<std::uint8_t> bytes;
  // The length comes from the open file itself, so a file that changes under us is caught by the short read.
  bool ok = std::fseek(f, 0, SEEK_END) == 0;
  const long size = ok ? std::ftell(f) : -1L;
  ok = ok && size >= 0 && std::fseek(f, 0, SEEK_SET) == 0;
  if (ok) {
    bytes.resize(static_cast<std::size_t>(size));
    ok = bytes.empty() || std::fread(bytes.data(), 1, bytes.size(), f) == bytes.size();
  }
  const int err = errno;
  std::fclose(f);
  DINO_CHECK(ok, path, ": read failed (", std::strerror(err), ")");
  return bytes;
}

inline bool is_gzip(const std::vector<std::uint8_t>& bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

// Inflates a gzip stream (one or more members, as gzip itself writes and reads them). The output buffer starts
// at the size the trailer announces but never beyond what deflate can possibly expand to (about 1032:1), so a
// corrupt trailer cannot trigger an absurd allocation; inflate checks every member's CRC and length.
inline std::vector<std::uint8_t> gunzip(const std::vector<std::uint8_t>& in, const std::string& path) {
  constexpr std::size_t kMaxRatio = 1032, kChunk = std::size_t(1) << 30;
  const std::size_t cap = in.size() * kMaxRatio + 1024;
  std::size_t hint = 1 << 16;
  if (in.size() >= 18) {
    const std::size_t n = in.size();
    hint = std::size_t(in[n - 4]) | std::size_t(in[n - 3]) << 8 | std::size_t(in[n - 2]) << 16 |
           std::size_t(in[n - 1]) << 24;
  }
  std::vector<std::uint8_t> out(std::min(std::max<std::size_t>(hint, 1), cap));

  z_stream zs{};
  DINO_CHECK(inflateInit2(&zs, 15 + 16) == Z_OK, path, ": zlib could not start inflating");
  struct End {
    z_stream* zs;
    ~End() { inflateEnd(zs); }
  } end{&zs};

  std::size_t in_pos = 0, out_pos = 0;
  for (;;) {
    if (out_pos == out.size()) {
      DINO_CHECK(out.size() < cap, path, ": corrupt gzip data (expands beyond ", cap, " bytes)");
      out.resize(std::min(std::max<std::size_t>(out.size() * 2, 1 << 16), cap));
    }
    zs.next_in = const_cast<Bytef*>(in.data() + in_pos);
    zs.avail_in = static_cast<uInt>(std::min(in.size() - in_pos, kChunk));
    zs.next_out = out.data() + out_pos;
    zs.avail_out = static_cast<uInt>(std::min(out.size() - out_pos, kChunk));
    const uInt avail_in = zs.avail_in, avail_out = zs.avail_out;
    const int rc = inflate(&zs, Z_NO_FLUSH);
    in_pos += avail_in - zs.avail_in;
    out_pos += avail_out - zs.avail_out;
    if (rc == Z_STREAM_END) {
      if (in_pos == in.size()) break;
      // Anything after a member must be another member; bytes that are not one are a corrupt file.
      DINO_CHECK(in.size() - in_pos >= 2 && in[in_pos] == 0x1f && in[in_pos + 1] == 0x8b, path,
                 ": expected end of file or another gzip member after the compressed data, found ",
                 in.size() - in_pos, " trailing bytes");
      DINO_CHECK(inflateReset(&zs) == Z_OK, path, ": zlib could not restart inflating");
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR) {
      // No progress possible: either the output is full (grown above) or the input ended mid-stream.
      DINO_CHECK(in_pos < in.size() || zs.avail_out == 0, path,
                 ": truncated gzip file (the compressed stream ends early)");
      continue;
    }
    fail(path, ": corrupt gzip data (", zs.msg != nullptr ? zs.msg : "zlib error " + std::to_string(rc), ")");
  }
  out.resize(out_pos);
  out.shrink_to_fit();
  return out;
}

// A file's bytes, inflated when it is gzip (detected by its magic, not its name: an idx file starts 00 00).
inline std::vector<std::uint8_t> read_maybe_gzip(const std::string& path) {
  std::vector<std::uint8_t> bytes = read_plain_file(path);
  if (is_gzip(bytes)) return gunzip(bytes, path);
  return bytes;
}

inline std::uint32_t load_be32(const std::uint8_t* p) {
  return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | std::uint32_t(p[3]);
}

inline std::string hex32(std::uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(v));
  return buf;
}

}  // namespace data_detail

// One validated idx array of unsigned bytes: its dims and where the payload starts in bytes.
struct IdxArray {
  std::vector<std::uint8_t> bytes;  // the whole (inflated) file
  std::vector<std::int64_t> dims;
  std::size_t offset = 0;           // payload start = 4 + 4 * dims.size()
};

// Reads an idx file (plain or gzip) and checks it holds unsigned bytes with exactly `ndims` dims and a payload
// of exactly prod(dims) bytes: a truncated file or trailing garbage is an error naming `path`.
inline IdxArray read_idx(const std::string& path, int ndims) {
  IdxArray a;
  a.bytes = data_detail::read_maybe_gzip(path);
  const std::uint32_t expected_magic = 0x00000800u | static_cast<std::uint32_t>(ndims);
  const char* what = ndims == 3 ? "images" : ndims == 1 ? "labels" : "data";
  DINO_CHECK(a.bytes.size() >= 4, path, ": expected an idx file of ", what, " (magic ",
             data_detail::hex32(expected_magic), "), found only ", a.bytes.size(), " bytes");
  const std::uint32_t magic = data_detail::load_be32(a.bytes.data());
  DINO_CHECK((magic & 0xffffff00u) == 0x00000800u, path, ": expected idx magic ",
             data_detail::hex32(expected_magic), " (unsigned bytes, ", ndims, " dims), found ",
             data_detail::hex32(magic));
  const int found_dims = static_cast<int>(magic & 0xffu);
  DINO_CHECK(found_dims == ndims, path, ": expected an idx file of ", what, " with ", ndims,
             " dims (magic ", data_detail::hex32(expected_magic), "), found ", found_dims, " dims");
  a.offset = 4 + 4 * static_cast<std::size_t>(ndims);
  DINO_CHECK(a.bytes.size() >= a.offset, path, ": truncated idx header (expected ", a.offset,
             " bytes, found ", a.bytes.size(), ")");
  const std::size_t payload = a.bytes.size() - a.offset;
  std::size_t expected = 1;
  bool too_big = false;
  for (int d = 0; d < ndims; ++d) {
    const std::uint32_t v = data_detail::load_be32(a.bytes.data() + 4 + 4 * d);
    a.dims.push_back(static_cast<std::int64_t>(v));
    // Compared against the bytes present, so a corrupt dim cannot overflow the product.
    if (v != 0 && expected > payload / v) too_big = true;
    if (!too_big) expected *= v;
  }
  std::string dims_str;
  for (std::size_t d = 0; d < a.dims.size(); ++d) dims_str += (d ? " x " : "") + std::to_string(a.dims[d]);
  DINO_CHECK(!too_big && expected <= payload, path, ": truncated idx payload (dims ", dims_str,
             " need more than the ", payload, " bytes present)");
  DINO_CHECK(expected == payload, path, ": expected ", expected, " payload bytes for dims ", dims_str,
             ", found ", payload, " (", payload - expected, " trailing bytes)");
  return a;
}

// images_path: idx3 [N, rows, cols] uint8; labels_path: idx1 [N] uint8. Rows and cols must equal
// info.native_size, the counts must agree and every label must lie in [0, info.classes). Grey: stored_channels 1.
inline ImageSet read_idx_pair(const std::string& images_path, const std::string& labels_path,
                              const DatasetInfo& info) {
  IdxArray images = read_idx(images_path, 3);
  const IdxArray labels = read_idx(labels_path, 1);
  const std::int64_t n = images.dims[0], rows = images.dims[1], cols = images.dims[2];
  DINO_CHECK(rows == info.native_size && cols == info.native_size, images_path, ": expected ", info.name,
             " images of ", info.native_size, "x", info.native_size, ", found ", rows, "x", cols);
  DINO_CHECK(n > 0, images_path, ": expected at least one image, found none");
  DINO_CHECK(labels.dims[0] == n, images_path, " holds ", n, " images but ", labels_path, " holds ",
             labels.dims[0], " labels: expected equal counts");
  DINO_CHECK(info.classes > 0, "dataset info of ", info.name, " has no classes");

  ImageSet set;
  set.info = info;
  set.n = n;
  set.h = static_cast<int>(rows);
  set.w = static_cast<int>(cols);
  set.stored_channels = 1;
  set.labels.resize(static_cast<std::size_t>(n));
  const std::uint8_t* lp = labels.bytes.data() + labels.offset;
  for (std::int64_t i = 0; i < n; ++i) {
    DINO_CHECK(lp[i] < info.classes, labels_path, ": label ", int(lp[i]), " of sample ", i, " is outside [0, ",
               info.classes, ") for ", info.name);
    set.labels[static_cast<std::size_t>(i)] = lp[i];
  }
  // The payload is already the image-after-image HWC layout with C = 1: drop the header and keep the buffer.
  images.bytes.erase(images.bytes.begin(), images.bytes.begin() + static_cast<std::ptrdiff_t>(images.offset));
  set.pixels = std::move(images.bytes);
  return set;
}

}  // namespace dino
