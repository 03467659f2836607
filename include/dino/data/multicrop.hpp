// Multi-crop presets (the testbed's configuration.create_mc_spec, spec §2.3): the crops of one sample, their
// size and RandomResizedCrop scale range, and which network sees each. Crop index = position in the list.
#pragma once
#include <string>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/shape.hpp"

namespace dino {

struct CropSpec {
  std::string name;  // "global1", "local3", ...
  Index size = 0;    // output side S
  double min_scale = 0, max_scale = 1;
  bool teacher = false, student = true;
};

struct MultiCrop {
  std::vector<CropSpec> crops;
  // Crop indices seen by the teacher (the globals) and by the student (all crops).
  std::vector<int> teacher_idx() const { return indices(true); }
  std::vector<int> student_idx() const { return indices(false); }
  std::vector<Index> sizes() const {
    std::vector<Index> out;
    for (const auto& c : crops) out.push_back(c.size);
    return out;
  }

 private:
  std::vector<int> indices(bool teacher) const {
    std::vector<int> out;
    for (std::size_t i = 0; i < crops.size(); ++i)
      if (teacher ? crops[i].teacher : crops[i].student) out.push_back(static_cast<int>(i));
    return out;
  }
};

// The names accepted by --mc.
inline const std::vector<std::string>& multicrop_names() {
  static const std::vector<std::string> names = {"2x128+4x96", "2x128", "1x128", "2x64+4x64", "2x64", "1x64",
                                                 "2x32+4x32",  "2x32",  "1x32",  "2x28+4x28", "2x28", "1x28"};
  return names;
}

// `2xG+4xL`: two globals (scale 0.4-1, teacher and student) and four locals (0.05-0.4, student only);
// `2xG`: two globals (0.14-1); `1xG`: one global (1-1).
inline MultiCrop multicrop_preset(const std::string& name) {
  const auto& names = multicrop_names();
  bool known = false;
  for (const auto& n : names) known = known || n == name;
  if (!known) {
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    fail("--mc: unknown multi-crop preset '", name, "' (choose one of ", list, ")");
  }
  MultiCrop mc;
  const auto plus = name.find('+');
  const int n_global = name[0] - '0';
  const Index g = std::stol(name.substr(2, plus == std::string::npos ? std::string::npos : plus - 2));
  if (plus != std::string::npos) {
    const Index l = std::stol(name.substr(plus + 3));
    for (int i = 0; i < 2; ++i) mc.crops.push_back({"global" + std::to_string(i + 1), g, 0.4, 1.0, true, true});
    for (int i = 0; i < 4; ++i) mc.crops.push_back({"local" + std::to_string(i + 1), l, 0.05, 0.4, false, true});
  } else if (n_global == 2) {
    for (int i = 0; i < 2; ++i) mc.crops.push_back({"global" + std::to_string(i + 1), g, 0.14, 1.0, true, true});
  } else {
    mc.crops.push_back({"global1", g, 1.0, 1.0, true, true});
  }
  return mc;
}

}  // namespace dino
