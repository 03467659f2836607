// Shape: the dimensions of a dense row-major tensor (at most 6), as torch.Size.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "dino/core/error.hpp"

namespace dino {

using Index = std::int64_t;

class Shape {
 public:
  static constexpr int kMaxDims = 6;

  Shape() = default;
  Shape(std::initializer_list<Index> dims) { assign(dims.begin(), dims.end()); }
  explicit Shape(const std::vector<Index>& dims) { assign(dims.begin(), dims.end()); }

  int rank() const { return rank_; }
  Index operator[](int i) const { return dims_[static_cast<std::size_t>(i)]; }
  Index& operator[](int i) { return dims_[static_cast<std::size_t>(i)]; }
  // Dimension counted from the end for negative i, as torch's size(-1).
  Index size(int i) const {
    const int k = i < 0 ? rank_ + i : i;
    DINO_CHECK(k >= 0 && k < rank_, "dimension ", i, " is out of range for shape ", str());
    return dims_[static_cast<std::size_t>(k)];
  }
  Index numel() const {
    Index n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
    return n;
  }
  std::vector<Index> vec() const { return std::vector<Index>(dims_.begin(), dims_.begin() + rank_); }

  bool operator==(const Shape& o) const {
    if (rank_ != o.rank_) return false;
    for (int i = 0; i < rank_; ++i)
      if (dims_[static_cast<std::size_t>(i)] != o.dims_[static_cast<std::size_t>(i)]) return false;
    return true;
  }
  bool operator!=(const Shape& o) const { return !(*this == o); }

  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string(dims_[static_cast<std::size_t>(i)]);
    return s + "]";
  }

 private:
  template <class It>
  void assign(It b, It e) {
    rank_ = 0;
    for (; b != e; ++b) {
      DINO_CHECK(rank_ < kMaxDims, "a shape has at most ", kMaxDims, " dimensions");
      DINO_CHECK(*b >= 0, "negative dimension ", *b, " in a shape");
      dims_[static_cast<std::size_t>(rank_++)] = *b;
    }
  }
  std::array<Index, kMaxDims> dims_{};
  int rank_ = 0;
};

}  // namespace dino
