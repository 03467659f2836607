// The safetensors format (checkpoints, PyTorch fixtures): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}} with an optional "__metadata__" string map, then one byte
// buffer. Reading validates every rule strictly; writing is deterministic and atomic (spec A10).
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/shape.hpp"
#include "dino/io/file.hpp"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "dino/io/safetensors.hpp reads and writes little-endian data in place: it needs a little-endian host"
#endif

namespace dino::io {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL };

// The format's name of a dtype ("F32") and its size in bytes.
inline const char* dtype_name(DType d) {
  switch (d) {
    case DType::F64: return "F64";
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::I16: return "I16";
    case DType::I8: return "I8";
    case DType::U64: return "U64";
    case DType::U32: return "U32";
    case DType::U16: return "U16";
    case DType::U8: return "U8";
    case DType::BOOL: return "BOOL";
  }
  return "?";
}
inline std::size_t dtype_size(DType d) {
  switch (d) {
    case DType::F64: case DType::I64: case DType::U64: return 8;
    case DType::F32: case DType::I32: case DType::U32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: case DType::U16: return 2;
    case DType::I8: case DType::U8: case DType::BOOL: return 1;
  }
  return 0;
}
// Parses a dtype name; false if it is not one of the names above.
inline bool parse_dtype(const std::string& s, DType& out) {
  for (DType d : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16, DType::I8,
                  DType::U64, DType::U32, DType::U16, DType::U8, DType::BOOL})
    if (s == dtype_name(d)) {
      out = d;
      return true;
    }
  return false;
}

// The dtype that stores the C++ type T exactly.
template <class T>
constexpr DType dtype_of() {
  static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>,
                "safetensors values are float, double or fixed-width integers (write BOOL as raw bytes)");
  if constexpr (std::is_same_v<T, double>) return DType::F64;
  else if constexpr (std::is_same_v<T, float>) return DType::F32;
  else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>)
    return sizeof(T) == 8 ? DType::I64 : sizeof(T) == 4 ? DType::I32 : sizeof(T) == 2 ? DType::I16 : DType::I8;
  else return sizeof(T) == 8 ? DType::U64 : sizeof(T) == 4 ? DType::U32 : sizeof(T) == 2 ? DType::U16 : DType::U8;
}

// One tensor: row-major little-endian bytes.
struct TensorData {
  DType dtype = DType::F32;
  std::vector<Index> shape;
  std::vector<std::uint8_t> bytes;

  Index numel() const {
    Index n = 1;
    for (Index d : shape) n *= d;
    return n;
  }
};

namespace detail {

// Header text quoted in messages: printable ASCII only and bounded, so an error stays one short line.
inline std::string printable(const std::string& s, std::size_t max_len = 80) {
  std::string out;
  for (unsigned char c : s.substr(0, max_len)) out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  if (s.size() > max_len) out += "...";
  return out;
}

inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    // Subnormal half: shift the mantissa up until its leading one becomes the implicit bit.
    exp = 113;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --exp;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline float bf16_to_float(std::uint16_t h) {
  const std::uint32_t bits = static_cast<std::uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// a * b, or false on overflow past max.
inline bool mul_bounded(std::uint64_t a, std::uint64_t b, std::uint64_t max, std::uint64_t& out) {
  if (a != 0 && b > max / a) return false;
  out = a * b;
  return out <= max;
}

// The source type S stored as T; false when an integer does not fit.
template <class T, class S>
bool convert_value(S v, T& out) {
  if constexpr (std::is_integral_v<T> && std::is_integral_v<S>) {
    if constexpr (std::is_signed_v<S> && !std::is_signed_v<T>) {
      if (v < 0) return false;
    }
    if constexpr (!std::is_signed_v<S> && std::is_signed_v<T>) {
      if (v > static_cast<std::make_unsigned_t<T>>(std::numeric_limits<T>::max())) return false;
    }
    out = static_cast<T>(v);
    return static_cast<S>(out) == v;
  } else {
    out = static_cast<T>(v);
    return true;
  }
}

template <class T, class S>
bool convert_all(const TensorData& t, std::vector<T>& out) {
  const std::size_t n = t.bytes.size() / sizeof(S);
  out.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    S v;
    std::memcpy(&v, t.bytes.data() + i * sizeof(S), sizeof(S));
    if (!convert_value(v, out[i])) return false;
  }
  return true;
}

}  // namespace detail

class Safetensors {
 public:
  // The format's limit on the header (the reference implementation's), checked before anything is allocated.
  static constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;

  // Reads and validates a file; throws dino::Error naming the file and the broken rule.
  static Safetensors load(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    DINO_CHECK(fd >= 0, "cannot open safetensors file '", path, "': ", std::strerror(errno));
    std::vector<std::uint8_t> data;
    std::string err;
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      err = std::strerror(errno);
    } else if (!S_ISREG(st.st_mode)) {
      err = "not a regular file";
    } else {
      data.resize(static_cast<std::size_t>(st.st_size));
      std::size_t got = 0;
      while (got < data.size()) {
        const ssize_t r = ::read(fd, data.data() + got, data.size() - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
          err = std::strerror(errno);
          break;
        }
        if (r == 0) {
          err = "the file shrank while it was read";
          break;
        }
        got += static_cast<std::size_t>(r);
      }
    }
    ::close(fd);
    DINO_CHECK(err.empty(), "cannot read safetensors file '", path, "': ", err);
    return parse(data.data(), data.size(), path);
  }

  // Validates and copies an in-memory file; origin names it in error messages.
  static Safetensors parse(const std::uint8_t* data, std::size_t size, const std::string& origin) {
    Safetensors out;
    out.origin_ = origin;
    auto bad = [&](const auto&... why) { fail("safetensors file '", origin, "': ", why...); };

    if (size < 8) bad("the file has ", size, " bytes, shorter than the 8-byte header length");
    std::uint64_t header_len = 0;
    std::memcpy(&header_len, data, 8);
    if (header_len > kMaxHeaderBytes) bad("header length ", header_len, " exceeds the 100 MB limit");
    if (header_len > size - 8) bad("header length ", header_len, " is larger than the rest of the file (", size - 8, " bytes)");
    const std::string header(reinterpret_cast<const char*>(data) + 8, static_cast<std::size_t>(header_len));
    if (header.empty() || header[0] != '{') bad("the header is not a JSON object (it does not start with '{')");
    // nlohmann's lexer stops at a NUL byte as at the end of input; JSON text never contains one.
    if (header.find('\0') != std::string::npos) bad("the header is not valid UTF-8 JSON (it contains a NUL byte)");

    // nlohmann keeps the last of duplicate keys, so duplicates are caught while parsing.
    using json = nlohmann::json;
    std::vector<std::set<std::string>> open_objects;
    std::string duplicate;
    bool duplicate_top = false;
    auto callback = [&](int, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::object_start) {
        open_objects.emplace_back();
      } else if (ev == json::parse_event_t::object_end) {
        open_objects.pop_back();
      } else if (ev == json::parse_event_t::key && !open_objects.empty()) {
        if (!open_objects.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
          duplicate = parsed.get<std::string>();
          duplicate_top = open_objects.size() == 1;
        }
      }
      return true;
    };
    json h;
    try {
      h = json::parse(header, callback);
    } catch (const json::exception& e) {
      bad("the header is not valid UTF-8 JSON (", detail::printable(e.what(), 200), ")");
    }
    if (!duplicate.empty())
      bad(duplicate_top ? "duplicate tensor name '" : "duplicate key '", detail::printable(duplicate), "' in the header");

    const std::uint64_t buffer_size = size - 8 - header_len;
    struct Span {
      std::uint64_t begin, end;
      std::string name;
    };
    std::vector<Span> spans;
    for (auto it = h.begin(); it != h.end(); ++it) {
      const std::string& name = it.key();
      const std::string qname = "'" + detail::printable(name) + "'";
      const json& v = it.value();
      if (name == "__metadata__") {
        if (!v.is_object()) bad("__metadata__ is not an object of strings");
        for (auto m = v.begin(); m != v.end(); ++m) {
          if (!m.value().is_string())
            bad("__metadata__ value of '", detail::printable(m.key()), "' is not a string");
          out.metadata[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      if (!v.is_object()) bad("the entry of tensor ", qname, " is not an object");
      for (auto k = v.begin(); k != v.end(); ++k)
        if (k.key() != "dtype" && k.key() != "shape" && k.key() != "data_offsets")
          bad("tensor ", qname, " has an unknown field '", detail::printable(k.key()), "'");
      if (!v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
        bad("tensor ", qname, " needs the fields dtype, shape and data_offsets");

      TensorData t;
      const json& dt = v["dtype"];
      if (!dt.is_string() || !parse_dtype(dt.get<std::string>(), t.dtype))
        bad("tensor ", qname, " has an unknown dtype ", detail::printable(dt.dump()));
      const json& shape = v["shape"];
      if (!shape.is_array()) bad("the shape of tensor ", qname, " is not an array");
      // Bounded by the buffer, so that the product cannot overflow and a hostile shape allocates nothing.
      std::uint64_t numel = 1;
      bool too_large = false;
      for (const json& d : shape) {
        if (!d.is_number_unsigned() || d.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<Index>::max()))
          bad("the shape of tensor ", qname, " has an entry that is not a non-negative integer: ", detail::printable(d.dump()));
        t.shape.push_back(static_cast<Index>(d.get<std::uint64_t>()));
      }
      for (Index d : t.shape) {
        if (d == 0) {
          numel = 0;
          too_large = false;
          break;
        }
        if (!too_large && !detail::mul_bounded(numel, static_cast<std::uint64_t>(d), buffer_size, numel)) too_large = true;
      }
      std::uint64_t nbytes = 0;
      if (too_large || !detail::mul_bounded(numel, dtype_size(t.dtype), buffer_size, nbytes))
        bad("tensor ", qname, " of shape ", detail::printable(shape.dump()), " does not fit in the data buffer (",
            buffer_size, " bytes)");

      const json& off = v["data_offsets"];
      if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
        bad("data_offsets of tensor ", qname, " is not [begin, end] with non-negative integers");
      const std::uint64_t b = off[0].get<std::uint64_t>(), e = off[1].get<std::uint64_t>();
      if (b > e) bad("data_offsets of tensor ", qname, " has begin ", b, " > end ", e);
      if (e > buffer_size)
        bad("data_offsets of tensor ", qname, " ends at ", e, ", past the data buffer (", buffer_size, " bytes)");
      if (e - b != nbytes)
        bad("tensor ", qname, " spans ", e - b, " bytes, but shape ", detail::printable(shape.dump()), " of ",
            dtype_name(t.dtype), " needs ", nbytes);
      spans.push_back({b, e, name});
      out.tensors_.emplace(name, std::move(t));
    }

    // Every byte of the buffer belongs to exactly one tensor; the entries may list them in any order.
    std::sort(spans.begin(), spans.end(),
              [](const Span& a, const Span& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
    std::uint64_t cursor = 0;
    const std::string* prev = nullptr;
    for (const Span& s : spans) {
      if (s.begin < cursor)
        bad("tensor '", detail::printable(s.name), "' overlaps tensor '", detail::printable(*prev), "' in the data buffer");
      if (s.begin > cursor)
        bad("bytes [", cursor, ", ", s.begin, ") of the data buffer belong to no tensor");
      cursor = s.end;
      prev = &s.name;
    }
    if (cursor != buffer_size)
      bad(buffer_size - cursor, " trailing bytes after the last tensor (the data buffer has ", buffer_size, ")");

    const std::uint8_t* buffer = data + 8 + header_len;
    for (const Span& s : spans) {
      TensorData& t = out.tensors_.at(s.name);
      t.bytes.assign(buffer + s.begin, buffer + s.end);
    }
    return out;
  }

  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // The tensor called name; throws dino::Error naming the file if there is none.
  const TensorData& at(const std::string& name) const {
    auto it = tensors_.find(name);
    DINO_CHECK(it != tensors_.end(), "safetensors file '", origin_, "' has no tensor '", name, "'");
    return it->second;
  }
  // Tensor names in sorted order.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (const auto& kv : tensors_) out.push_back(kv.first);
    return out;
  }
  std::size_t size() const { return tensors_.size(); }
  // The file this was loaded from ("" for one built in memory).
  const std::string& origin() const { return origin_; }

  // The values of a tensor converted to T. Floating T accepts every dtype; integral T accepts the integer
  // dtypes and BOOL, and throws if a value does not fit in T.
  template <class T>
  std::vector<T> values(const std::string& name) const {
    static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "values<T>: T must be a number type");
    const TensorData& t = at(name);
    std::vector<T> out;
    bool ok = true;
    switch (t.dtype) {
      case DType::F64: case DType::F32: case DType::F16: case DType::BF16:
        DINO_CHECK(std::is_floating_point_v<T>, "safetensors file '", origin_, "': tensor '", name, "' holds ",
                   dtype_name(t.dtype), " values, which cannot be read as integers");
        if (t.dtype == DType::F64) ok = detail::convert_all<T, double>(t, out);
        if (t.dtype == DType::F32) ok = detail::convert_all<T, float>(t, out);
        if (t.dtype == DType::F16 || t.dtype == DType::BF16) {
          std::vector<std::uint16_t> raw;
          detail::convert_all<std::uint16_t, std::uint16_t>(t, raw);
          out.resize(raw.size());
          for (std::size_t i = 0; i < raw.size(); ++i)
            out[i] = static_cast<T>(t.dtype == DType::F16 ? detail::half_to_float(raw[i]) : detail::bf16_to_float(raw[i]));
        }
        break;
      case DType::I64: ok = detail::convert_all<T, std::int64_t>(t, out); break;
      case DType::I32: ok = detail::convert_all<T, std::int32_t>(t, out); break;
      case DType::I16: ok = detail::convert_all<T, std::int16_t>(t, out); break;
      case DType::I8: ok = detail::convert_all<T, std::int8_t>(t, out); break;
      case DType::U64: ok = detail::convert_all<T, std::uint64_t>(t, out); break;
      case DType::U32: ok = detail::convert_all<T, std::uint32_t>(t, out); break;
      case DType::U16: ok = detail::convert_all<T, std::uint16_t>(t, out); break;
      case DType::U8: ok = detail::convert_all<T, std::uint8_t>(t, out); break;
      case DType::BOOL:
        out.resize(t.bytes.size());
        for (std::size_t i = 0; i < t.bytes.size(); ++i) out[i] = static_cast<T>(t.bytes[i] != 0);
        break;
    }
    DINO_CHECK(ok, "safetensors file '", origin_, "': a value of tensor '", name, "' (", dtype_name(t.dtype),
               ") does not fit in the requested integer type");
    return out;
  }

  // Adds or replaces a tensor of dtype_of<T>() with the given row-major values.
  template <class T>
  void set(const std::string& name, const std::vector<Index>& shape, const std::vector<T>& values) {
    TensorData t;
    t.dtype = dtype_of<T>();
    t.shape = shape;
    t.bytes.resize(values.size() * sizeof(T));
    if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
    set(name, std::move(t));
  }
  // Adds or replaces a tensor given as raw bytes (BOOL, F16, ...); their count must match the shape.
  void set(const std::string& name, TensorData t) {
    DINO_CHECK(!name.empty() && name != "__metadata__", "safetensors: invalid tensor name '", name, "'");
    for (Index d : t.shape) DINO_CHECK(d >= 0, "safetensors: tensor '", name, "' has a negative dimension");
    DINO_CHECK(t.bytes.size() == static_cast<std::size_t>(t.numel()) * dtype_size(t.dtype), "safetensors: tensor '",
               name, "' has ", t.bytes.size(), " bytes but its shape of ", dtype_name(t.dtype), " needs ",
               static_cast<std::size_t>(t.numel()) * dtype_size(t.dtype));
    tensors_[name] = std::move(t);
  }
  void erase(const std::string& name) { tensors_.erase(name); }

  // The file's bytes: tensors in name order, the header padded with spaces to a multiple of 8 bytes.
  std::vector<std::uint8_t> serialize() const {
    using json = nlohmann::json;
    json h = json::object();
    if (!metadata.empty()) h["__metadata__"] = metadata;
    std::uint64_t offset = 0;
    for (const auto& [name, t] : tensors_) {
      h[name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
      offset += t.bytes.size();
    }
    std::string header;
    try {
      header = h.dump();
    } catch (const json::exception& e) {
      fail("safetensors: a tensor name or metadata string is not valid UTF-8 (", detail::printable(e.what(), 200), ")");
    }
    header.append((8 - header.size() % 8) % 8, ' ');
    std::vector<std::uint8_t> out(8 + header.size() + offset);
    const std::uint64_t len = header.size();
    std::memcpy(out.data(), &len, 8);
    std::memcpy(out.data() + 8, header.data(), header.size());
    std::uint8_t* p = out.data() + 8 + header.size();
    for (const auto& kv : tensors_) {
      if (!kv.second.bytes.empty()) std::memcpy(p, kv.second.bytes.data(), kv.second.bytes.size());
      p += kv.second.bytes.size();
    }
    return out;
  }

  // Writes the file atomically: "<path>.tmp.<pid>", fsync, rename over path, fsync the folder. On failure
  // the temporary file is removed, an existing file at path is left as it was, and dino::Error names path.
  void save(const std::string& path) const {
    const std::vector<std::uint8_t> bytes = serialize();
    write_file_atomic(path, bytes.data(), bytes.size());
  }

  // "__metadata__": free-form string pairs (spec A10: format = pt, optimizer and trainer state as JSON).
  std::map<std::string, std::string> metadata;

 private:
  std::map<std::string, TensorData> tensors_;
  std::string origin_;
};

}  // namespace dino::io
