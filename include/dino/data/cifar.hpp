// CIFAR-10 / CIFAR-100 binary batches (spec A2): records of label byte(s) then a 32x32 RGB image stored
// channel-major (R plane, G plane, B plane), converted here to the interleaved HWC layout of ImageSet.
// The torchvision datasets read the python pickles instead; the pixels and labels are the same.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/data/idx.hpp"  // data_detail::read_plain_file
#include "dino/data/image.hpp"

namespace dino {

inline constexpr int kCifarSide = 32;
inline constexpr std::size_t kCifarPixels = std::size_t(kCifarSide) * kCifarSide * 3;  // 3072
inline constexpr int kCifar100Coarse = 20;

// Bytes per record: CIFAR-10 has one label byte, CIFAR-100 a coarse and a fine one.
inline std::size_t cifar_record_size(bool cifar100) { return (cifar100 ? 2 : 1) + kCifarPixels; }

// Concatenates the records of `paths`, in order, into one ImageSet of 32x32x3 images. CIFAR-100 keeps the fine
// label (its coarse label is only range-checked). Every file must be a non-empty whole number of records and
// every label must lie in [0, info.classes).
inline ImageSet read_cifar_batches(const std::vector<std::string>& paths, const DatasetInfo& info, bool cifar100) {
  DINO_CHECK(!paths.empty(), "read_cifar_batches: expected at least one batch file for ", info.name);
  DINO_CHECK(info.native_size == kCifarSide, "dataset info of ", info.name, ": expected native size ", kCifarSide,
             " for CIFAR batches, found ", info.native_size);
  DINO_CHECK(info.classes > 0, "dataset info of ", info.name, " has no classes");
  const std::size_t record = cifar_record_size(cifar100);
  const char* layout = cifar100 ? "2 label bytes + 3072 pixel bytes" : "1 label byte + 3072 pixel bytes";

  // Sizes first, so the pixel buffer is allocated once and only for records that are really there.
  std::int64_t total = 0;
  for (const std::string& path : paths) {
    std::error_code ec;
    DINO_CHECK(std::filesystem::is_regular_file(path, ec), path, ": ", info.name,
               " batch file not found (expected a regular file)");
    const auto size = std::filesystem::file_size(path, ec);
    DINO_CHECK(!ec, path, ": cannot read the size of the file (", ec.message(), ")");
    DINO_CHECK(size > 0 && size % record == 0, path, ": expected a non-empty whole number of ", info.name,
               " records of ", record, " bytes (", layout, "), found ", size, " bytes");
    total += static_cast<std::int64_t>(size / record);
  }

  ImageSet set;
  set.info = info;
  set.n = total;
  set.h = set.w = kCifarSide;
  set.stored_channels = 3;
  set.pixels.resize(static_cast<std::size_t>(total) * kCifarPixels);
  set.labels.resize(static_cast<std::size_t>(total));

  constexpr std::size_t plane = std::size_t(kCifarSide) * kCifarSide;
  std::size_t i = 0;
  for (const std::string& path : paths) {
    const std::vector<std::uint8_t> bytes = data_detail::read_plain_file(path);
    const std::size_t records = bytes.size() / record;
    // Re-checked after the read: the file may have changed since its size was taken.
    DINO_CHECK(bytes.size() % record == 0 && records > 0 && i + records <= static_cast<std::size_t>(total), path,
               ": changed size while being read (expected whole ", record, "-byte records)");
    for (std::size_t r = 0; r < records; ++r, ++i) {
      const std::uint8_t* rec = bytes.data() + r * record;
      if (cifar100)
        DINO_CHECK(rec[0] < kCifar100Coarse, path, ": coarse label ", int(rec[0]), " of record ", r,
                   " is outside [0, ", kCifar100Coarse, ")");
      const int label = cifar100 ? rec[1] : rec[0];
      DINO_CHECK(label < info.classes, path, ": label ", label, " of record ", r, " is outside [0, ", info.classes,
                 ") for ", info.name);
      set.labels[i] = label;
      const std::uint8_t* src = rec + (cifar100 ? 2 : 1);
      std::uint8_t* dst = set.pixels.data() + i * kCifarPixels;
      for (std::size_t p = 0; p < plane; ++p) {
        dst[3 * p + 0] = src[p];
        dst[3 * p + 1] = src[plane + p];
        dst[3 * p + 2] = src[2 * plane + p];
      }
    }
  }
  DINO_CHECK(i == static_cast<std::size_t>(total), paths.back(), ": the ", info.name,
             " batch files changed size while being read");
  return set;
}

}  // namespace dino
