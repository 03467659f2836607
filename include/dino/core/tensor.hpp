// Tensor<T, B>: a dense, row-major, owning array in the memory of backend B (host for Cpu, device for Cuda),
// the analogue of a contiguous torch.Tensor. Move-only; copies are explicit (clone, copy_from).
#pragma once
#include <utility>
#include <vector>

#include "dino/core/backend.hpp"
#include "dino/core/shape.hpp"

namespace dino {

template <class T, class B>
class Tensor {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  Tensor() = default;
  explicit Tensor(const Shape& shape) { resize(shape); }
  ~Tensor() { release(); }
  Tensor(Tensor&& o) noexcept { swap(o); }
  Tensor& operator=(Tensor&& o) noexcept {
    if (this != &o) {
      release();
      swap(o);
    }
    return *this;
  }
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  // Sets the shape; memory is reallocated only when it grows, so a steady-state loop allocates nothing.
  // The contents are unspecified afterwards.
  void resize(const Shape& shape) {
    const Index n = shape.numel();
    if (n > capacity_) {
      release();
      data_ = B::template allocate<T>(n);
      capacity_ = n;
    }
    shape_ = shape;
  }
  // Same element count, new dimensions (as torch.reshape on a contiguous tensor).
  void reshape(const Shape& shape) {
    DINO_CHECK(shape.numel() == shape_.numel(), "cannot reshape ", shape_.str(), " to ", shape.str());
    shape_ = shape;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  Index numel() const { return shape_.numel(); }
  Index size(int i) const { return shape_.size(i); }
  int rank() const { return shape_.rank(); }
  bool empty() const { return numel() == 0; }

  // Host <-> backend transfers (blocking).
  static Tensor from_host(const Shape& shape, const std::vector<T>& values) {
    DINO_CHECK(static_cast<Index>(values.size()) == shape.numel(), "from_host: ", values.size(),
               " values for shape ", shape.str());
    Tensor t(shape);
    B::copy_from_host(t.data_, values.data(), shape.numel());
    return t;
  }
  std::vector<T> to_host() const {
    std::vector<T> out(static_cast<std::size_t>(numel()));
    B::copy_to_host(out.data(), data_, numel());
    return out;
  }
  void copy_from(const Tensor& src) {
    resize(src.shape());
    B::copy(data_, src.data_, src.numel());
  }
  Tensor clone() const {
    Tensor t;
    t.copy_from(*this);
    return t;
  }
  void fill(T value) { B::fill(data_, numel(), value); }

 private:
  void release() {
    if (data_) B::deallocate(data_);
    data_ = nullptr;
    capacity_ = 0;
  }
  void swap(Tensor& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(capacity_, o.capacity_);
    std::swap(shape_, o.shape_);
  }
  T* data_ = nullptr;
  Index capacity_ = 0;
  Shape shape_;
};

}  // namespace dino
