// The tables of `--save_features` (the testbed's FeatureSaver, spec §12.1 and A11): for the fixed validation
// images, one float32 .npy table per step and kind, rows = images, columns lbl, t_0.., s_0.. (teacher then
// student), and the column names once per kind folder in columns.json; never pickle.
#pragma once
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/io/file.hpp"
#include "dino/io/npy.hpp"

namespace dino::io {

// The folder of one kind: <dir>/valid/feat/<kind>, kind "embed", "proje" or "logit" (the testbed's n[:5]).
inline std::string feature_folder(const std::string& dir, const std::string& kind) {
  DINO_CHECK(kind == "embed" || kind == "proje" || kind == "logit", "feature table: the kind must be embed, proje ",
             "or logit, got '", kind, "'");
  return (std::filesystem::path(dir) / "valid" / "feat" / kind).string();
}

// <dir>/valid/feat/<kind>/table_<step, zero-padded to 6 digits>.npy
inline std::string feature_table_path(const std::string& dir, const std::string& kind, std::int64_t step) {
  DINO_CHECK(step >= 0, "feature table: negative step ", step);
  char name[40];
  std::snprintf(name, sizeof(name), "table_%06lld.npy", static_cast<long long>(step));
  return (std::filesystem::path(feature_folder(dir, kind)) / name).string();
}

// ["lbl", "t_0", ..., "t_{dim-1}", "s_0", ..., "s_{dim-1}"], the testbed's DataFrame columns.
inline std::vector<std::string> feature_columns(std::int64_t dim) {
  std::vector<std::string> c{"lbl"};
  for (const char* who : {"t_", "s_"})
    for (std::int64_t i = 0; i < dim; ++i) c.push_back(who + std::to_string(i));
  return c;
}

// Writes <dir>/valid/feat/<kind>/table_<step:06d>.npy: float32 [rows, 1 + 2 dim], row i = (labels[i],
// teacher[i, :], student[i, :]) with teacher and student [rows, dim] row-major on the host; replaced atomically
// (not fsynced: one new file per step). Also writes columns.json in that folder when it is missing or names other
// columns. Returns the table's path.
template <class T>
std::string write_feature_table(const std::string& dir, const std::string& kind, std::int64_t step,
                                const std::vector<std::int64_t>& labels, const std::vector<T>& teacher,
                                const std::vector<T>& student, std::int64_t dim) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "features are float or double");
  const std::string path = feature_table_path(dir, kind, step);
  const std::int64_t rows = static_cast<std::int64_t>(labels.size());
  DINO_CHECK(rows >= 1 && dim >= 1, "feature table ", kind, ": needs at least one row and one feature, got ", rows,
             " labels and dim ", dim);
  DINO_CHECK(static_cast<std::int64_t>(teacher.size()) == rows * dim &&
                 static_cast<std::int64_t>(student.size()) == rows * dim,
             "feature table ", kind, ": teacher has ", teacher.size(), " and student ", student.size(),
             " values; expected [", rows, ", ", dim, "] = ", rows * dim, " each");
  // float32 holds every integer up to 2^24 exactly.
  for (std::size_t i = 0; i < labels.size(); ++i)
    DINO_CHECK(labels[i] >= 0 && labels[i] < (std::int64_t(1) << 24), "feature table ", kind, ": label ", labels[i],
               " of row ", i, " is outside [0, 2^24)");

  const std::string folder = feature_folder(dir, kind);
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  DINO_CHECK(!ec, "feature table: cannot create the folder '", folder, "': ", ec.message());

  const std::int64_t cols = 1 + 2 * dim;
  std::vector<float> table(static_cast<std::size_t>(rows * cols));
  // double values round to the nearest float (beyond its range: +-inf), as numpy's astype(np.float32).
  for (std::int64_t r = 0; r < rows; ++r) {
    float* out = table.data() + r * cols;
    out[0] = static_cast<float>(labels[static_cast<std::size_t>(r)]);
    for (std::int64_t j = 0; j < dim; ++j) {
      out[1 + j] = static_cast<float>(teacher[static_cast<std::size_t>(r * dim + j)]);
      out[1 + dim + j] = static_cast<float>(student[static_cast<std::size_t>(r * dim + j)]);
    }
  }
  write_file_atomic(path, npy_f32_bytes(rows, cols, table.data()), false);

  const std::string columns_path = (std::filesystem::path(folder) / "columns.json").string();
  const std::string columns = nlohmann::json(feature_columns(dim)).dump() + "\n";
  std::string existing;
  if (std::ifstream in{columns_path, std::ios::binary})
    existing.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (existing != columns) write_file_atomic(columns_path, columns);
  return path;
}

}  // namespace dino::io
