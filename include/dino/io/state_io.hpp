// A model's named state (parameters, buffers, integer counters) to and from safetensors tensors named
// "<prefix>.<state_dict key>", the layout of the testbed's DINO module (spec A10): row-major values of the
// run's scalar type, num_batches_tracked as a 0-dim int64. Loading is strict, as load_state_dict(strict=True).
#pragma once
#include <set>
#include <string>
#include <vector>

#include "dino/core/params.hpp"
#include "dino/io/safetensors.hpp"

namespace dino::io {

namespace detail {
inline std::string prefixed(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}
template <class T, class B>
void put_store(Safetensors& f, const NamedStore<T, B>& store, const std::string& prefix) {
  const std::vector<T> all = store.values().to_host();
  for (const Entry& e : store.entries()) {
    const auto begin = all.begin() + e.offset;
    f.set(prefixed(prefix, e.name), e.shape.vec(), std::vector<T>(begin, begin + e.shape.numel()));
  }
}
template <class T, class B>
void get_store(const Safetensors& f, NamedStore<T, B>& store, const std::string& prefix) {
  std::vector<T> all = store.values().to_host();
  for (const Entry& e : store.entries()) {
    const std::string key = prefixed(prefix, e.name);
    DINO_CHECK(f.has(key), "'", f.origin(), "' lacks '", key, "'");
    const TensorData& t = f.at(key);
    DINO_CHECK(t.shape == e.shape.vec(), "'", f.origin(), "': '", key, "' has shape ", Shape(t.shape).str(),
               ", the model expects ", e.shape.str());
    const std::vector<T> v = f.values<T>(key);
    std::copy(v.begin(), v.end(), all.begin() + e.offset);
  }
  if (!all.empty()) B::copy_from_host(store.values().data(), all.data(), static_cast<Index>(all.size()));
}
}  // namespace detail

// Adds the state under "<prefix>.<name>" (prefix "" for bare names).
template <class T, class B>
void save_state(Safetensors& f, const ModelState<T, B>& s, const std::string& prefix) {
  detail::put_store(f, s.params, prefix);
  detail::put_store(f, s.buffers, prefix);
  for (const auto& [name, value] : s.counters)
    f.set(detail::prefixed(prefix, name), std::vector<Index>{}, std::vector<std::int64_t>{value});
}

// Reads every parameter, buffer and counter of s from "<prefix>.<name>"; a missing tensor, a shape that
// differs, or a tensor under the prefix that the model does not have is an error naming the file and key.
template <class T, class B>
void load_state(const Safetensors& f, ModelState<T, B>& s, const std::string& prefix) {
  std::set<std::string> expected;
  for (const Entry& e : s.params.entries()) expected.insert(detail::prefixed(prefix, e.name));
  for (const Entry& e : s.buffers.entries()) expected.insert(detail::prefixed(prefix, e.name));
  for (const auto& c : s.counters) expected.insert(detail::prefixed(prefix, c.first));
  const std::string head = prefix.empty() ? "" : prefix + ".";
  for (const std::string& name : f.names())
    DINO_CHECK(name.compare(0, head.size(), head) != 0 || expected.count(name), "'", f.origin(),
               "' holds '", name, "', which the model does not have");
  detail::get_store(f, s.params, prefix);
  detail::get_store(f, s.buffers, prefix);
  for (auto& [name, value] : s.counters) {
    const std::string key = detail::prefixed(prefix, name);
    DINO_CHECK(f.has(key), "'", f.origin(), "' lacks '", key, "'");
    const std::vector<std::int64_t> v = f.values<std::int64_t>(key);
    DINO_CHECK(v.size() == 1, "'", f.origin(), "': '", key, "' must hold one integer, it holds ", v.size());
    value = v[0];
  }
}

}  // namespace dino::io
