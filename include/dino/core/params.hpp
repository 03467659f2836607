// Named flat stores: every parameter of a model lives in one values buffer and one gradients buffer, under
// the names of the testbed's PyTorch named_parameters(); buffers (BatchNorm running stats, the head's
// centre) live in a second store without gradients, and integer counters (num_batches_tracked) on the
// host. EMA, optimizers, clipping and checkpoints are then single operations over flat buffers.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dino/core/tensor.hpp"

namespace dino {

struct Entry {
  std::string name;
  Shape shape;
  Index offset = 0;
};

// Registration happens while modules are built; finalize() then allocates. Module code keeps the id that
// add() returns and looks its pointers up at every call (one addition).
template <class T, class B>
class NamedStore {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

 public:
  explicit NamedStore(bool with_grads) : with_grads_(with_grads) {}

  Index add(const std::string& name, const Shape& shape) {
    DINO_CHECK(!finalized_, "cannot add '", name, "': the store is already finalized");
    DINO_CHECK(find(name) < 0, "duplicate parameter or buffer name '", name, "'");
    entries_.push_back({name, shape, total_});
    total_ += shape.numel();
    return static_cast<Index>(entries_.size()) - 1;
  }
  // Allocates the buffers (values zero-filled, gradients too); no add() after this.
  void finalize() {
    if (finalized_) return;
    values_.resize({total_});
    values_.fill(T(0));
    if (with_grads_) {
      grads_.resize({total_});
      grads_.fill(T(0));
    }
    finalized_ = true;
  }
  bool finalized() const { return finalized_; }

  T* value(Index id) { return values_.data() + checked(id).offset; }
  const T* value(Index id) const { return values_.data() + checked(id).offset; }
  T* grad(Index id) {
    DINO_CHECK(with_grads_, "the store of '", checked(id).name, "' holds no gradients");
    return grads_.data() + checked(id).offset;
  }

  Index count() const { return static_cast<Index>(entries_.size()); }
  Index numel() const { return total_; }
  const Entry& entry(Index id) const { return entries_.at(static_cast<std::size_t>(id)); }
  const std::vector<Entry>& entries() const { return entries_; }
  Index find(const std::string& name) const {
    for (std::size_t i = 0; i < entries_.size(); ++i)
      if (entries_[i].name == name) return static_cast<Index>(i);
    return -1;
  }

  Tensor<T, B>& values() { return values_; }
  const Tensor<T, B>& values() const { return values_; }
  Tensor<T, B>& grads() { return grads_; }
  const Tensor<T, B>& grads() const { return grads_; }
  void zero_grad() {
    if (with_grads_ && finalized_) grads_.fill(T(0));
  }

 private:
  const Entry& checked(Index id) const {
    DINO_CHECK(id >= 0 && id < count(), "no parameter or buffer with id ", id);
    const Entry& e = entries_[static_cast<std::size_t>(id)];
    DINO_CHECK(finalized_, "'", e.name, "' used before the store was finalized");
    return e;
  }
  bool with_grads_;
  bool finalized_ = false;
  std::vector<Entry> entries_;
  Index total_ = 0;
  Tensor<T, B> values_, grads_;
};

// Everything a model owns besides its structure.
template <class T, class B>
struct ModelState {
  using scalar = T;
  using backend = B;
  NamedStore<T, B> params{true};
  NamedStore<T, B> buffers{false};
  // Integer buffers (torch int64), kept on the host: BatchNorm's num_batches_tracked.
  std::vector<std::pair<std::string, std::int64_t>> counters;

  Index add_counter(const std::string& name) {
    for (const auto& c : counters) DINO_CHECK(c.first != name, "duplicate counter name '", name, "'");
    counters.emplace_back(name, 0);
    return static_cast<Index>(counters.size()) - 1;
  }
  std::int64_t& counter(Index id) { return counters.at(static_cast<std::size_t>(id)).second; }
  void finalize() {
    params.finalize();
    buffers.finalize();
  }
};

}  // namespace dino
