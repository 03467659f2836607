// dino::io::Safetensors: round trips, deterministic bytes, one malformed file per validation rule (each
// rejected with a one-line reason naming the file), random corruptions that must never crash, atomic saves.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "dino/core/random.hpp"
#include "dino/io/safetensors.hpp"

#include "../support/temp_dir.hpp"

namespace fs = std::filesystem;
using dino::Index;
using dino::io::DType;
using dino::io::Safetensors;
using dino::io::TensorData;

namespace {

using TempDir = dino::testing::TempDir;

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(f), {});
}
void write_bytes(const std::string& path, const std::vector<std::uint8_t>& b) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
// A file from a header text and a buffer size (filled with 0xAB); header_len overrides the length field.
std::vector<std::uint8_t> raw_file(const std::string& header, std::size_t buffer_bytes,
                                   std::uint64_t header_len = std::numeric_limits<std::uint64_t>::max()) {
  const std::uint64_t len = header_len == std::numeric_limits<std::uint64_t>::max() ? header.size() : header_len;
  std::vector<std::uint8_t> b(8 + header.size() + buffer_bytes, 0xAB);
  std::memcpy(b.data(), &len, 8);
  if (!header.empty()) std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}
// The message of the dino::Error that loading path throws ("" if it loads).
std::string load_error(const std::string& path) {
  try {
    Safetensors::load(path);
  } catch (const dino::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("safetensors: round trip of every value dtype, metadata, scalars and empty tensors") {
  TempDir tmp;
  Safetensors st;
  st.set<double>("b.f64", {2, 3}, {1.5, -2.25, 3, 4e-300, -0.0, 1e300});
  st.set<float>("a.f32", {3}, {1.5f, -2.5f, 7.0f});
  st.set<std::int64_t>("n", {}, {std::int64_t(1) << 40});
  st.set<std::int32_t>("i32", {1, 2}, {-7, 9});
  st.set<std::uint8_t>("u8", {4}, {0, 1, 200, 255});
  st.set<float>("empty", {0, 5}, {});
  TensorData flags;
  flags.dtype = DType::BOOL;
  flags.shape = {3};
  flags.bytes = {1, 0, 1};
  st.set("flags", flags);
  st.metadata["format"] = "pt";
  st.metadata["note"] = "{\"json\": [1, 2]}";
  const std::string path = tmp.path("rt.safetensors");
  st.save(path);

  const Safetensors in = Safetensors::load(path);
  CHECK(in.origin() == path);
  CHECK(in.names() == std::vector<std::string>{"a.f32", "b.f64", "empty", "flags", "i32", "n", "u8"});
  CHECK(in.metadata == st.metadata);
  for (const auto& name : st.names()) {
    CAPTURE(name);
    CHECK(in.at(name).dtype == st.at(name).dtype);
    CHECK(in.at(name).shape == st.at(name).shape);
    CHECK(in.at(name).bytes == st.at(name).bytes);
  }
  CHECK(in.values<double>("b.f64") == std::vector<double>{1.5, -2.25, 3, 4e-300, -0.0, 1e300});
  CHECK(in.values<double>("a.f32") == std::vector<double>{1.5, -2.5, 7.0});
  CHECK(in.values<std::int64_t>("n") == std::vector<std::int64_t>{std::int64_t(1) << 40});
  CHECK(in.values<double>("i32") == std::vector<double>{-7, 9});
  CHECK(in.values<float>("u8") == std::vector<float>{0, 1, 200, 255});
  CHECK(in.values<std::int32_t>("flags") == std::vector<std::int32_t>{1, 0, 1});
  CHECK(in.values<float>("empty").empty());
  CHECK(in.at("n").numel() == 1);
  CHECK(in.at("empty").numel() == 0);
  CHECK(in.has("u8"));
  CHECK_FALSE(in.has("missing"));
  CHECK_THROWS_AS(in.at("missing"), dino::Error);
}

TEST_CASE("safetensors: bytes are deterministic, sorted by name, the header padded to 8 bytes") {
  Safetensors a, b;
  a.set<float>("x", {1}, {1.0f});
  a.set<float>("y.weight", {2}, {2.0f, 3.0f});
  b.set<float>("y.weight", {2}, {2.0f, 3.0f});
  b.set<float>("x", {1}, {1.0f});
  const auto bytes = a.serialize();
  CHECK(bytes == b.serialize());
  std::uint64_t len = 0;
  std::memcpy(&len, bytes.data(), 8);
  CHECK(len % 8 == 0);
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(len));
  CHECK(header.find("\"x\"") < header.find("\"y.weight\""));
  CHECK(header.find("[0,4]") != std::string::npos);   // x first
  CHECK(header.find("[4,12]") != std::string::npos);  // then y.weight
  CHECK(header[header.find_last_not_of(' ')] == '}');
  // Parsing what we wrote gives the same bytes back.
  CHECK(Safetensors::parse(bytes.data(), bytes.size(), "memory").serialize() == bytes);
}

TEST_CASE("safetensors: reads a file written by another writer (entries out of order, spaces, F16/BF16)") {
  // Data in reverse order of the entries, as any writer may lay it out.
  const std::string header =
      R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[4,8]},"g":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})"
      "   ";
  auto file = raw_file(header, 0);
  const std::uint16_t bf16[2] = {0x3fc0, 0xc000};  // 1.5, -2
  const std::uint16_t f16[2] = {0x3c00, 0x0001};   // 1, the smallest subnormal 2^-24
  file.insert(file.end(), reinterpret_cast<const std::uint8_t*>(bf16), reinterpret_cast<const std::uint8_t*>(bf16) + 4);
  file.insert(file.end(), reinterpret_cast<const std::uint8_t*>(f16), reinterpret_cast<const std::uint8_t*>(f16) + 4);
  const Safetensors st = Safetensors::parse(file.data(), file.size(), "other");
  CHECK(st.values<float>("g") == std::vector<float>{1.5f, -2.0f});
  CHECK(st.values<double>("h") == std::vector<double>{1.0, std::ldexp(1.0, -24)});
  CHECK_THROWS_AS(st.values<std::int32_t>("h"), dino::Error);
}

TEST_CASE("safetensors: conversions that would lose values are refused") {
  Safetensors st;
  st.set<double>("f", {1}, {1.0});
  st.set<std::int64_t>("big", {1}, {std::int64_t(1) << 40});
  st.set<std::int32_t>("neg", {1}, {-1});
  auto msg = [&](auto fn) {
    try {
      fn();
    } catch (const dino::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(msg([&] { st.values<std::int64_t>("f"); }).find("cannot be read as integers") != std::string::npos);
  CHECK(msg([&] { st.values<std::int32_t>("big"); }).find("does not fit") != std::string::npos);
  CHECK(msg([&] { st.values<std::uint8_t>("neg"); }).find("does not fit") != std::string::npos);
  CHECK(st.values<std::int64_t>("neg") == std::vector<std::int64_t>{-1});
  CHECK_THROWS_AS(st.set<float>("bad", {2, 2}, {1.0f}), dino::Error);
  CHECK_THROWS_AS(st.set<float>("__metadata__", {1}, {1.0f}), dino::Error);
  CHECK_THROWS_AS(st.set<float>("", {1}, {1.0f}), dino::Error);
}

TEST_CASE("safetensors: every malformed file is rejected with its reason") {
  TempDir tmp;
  struct Bad {
    const char* what;
    std::vector<std::uint8_t> bytes;
    const char* reason;
  };
  const std::string ok_entry = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::vector<Bad> cases = {
      {"empty file", {}, "shorter than the 8-byte header length"},
      {"3 bytes", {1, 2, 3}, "shorter than the 8-byte header length"},
      {"header longer than the file", raw_file("{}", 0, 100), "larger than the rest of the file"},
      {"header over 100 MB", raw_file("{}", 0, 200'000'000), "exceeds the 100 MB limit"},
      {"header length near 2^64", raw_file("{}", 0, ~std::uint64_t(0) - 1), "exceeds the 100 MB limit"},
      {"empty header", raw_file("", 0), "not a JSON object"},
      {"array header", raw_file("[1, 2]", 0), "not a JSON object"},
      {"truncated JSON", raw_file("{\"t\": {", 0), "not valid UTF-8 JSON"},
      {"JSON then garbage", raw_file("{} x", 0), "not valid UTF-8 JSON"},
      {"invalid UTF-8", raw_file("{\"\xff\xfe\": {}}", 0), "not valid UTF-8 JSON"},
      {"NUL padding", raw_file(std::string("{}\0\0", 4), 0), "contains a NUL byte"},
      {"NUL then garbage", raw_file(std::string("{}\0 x", 4), 0), "contains a NUL byte"},
      {"duplicate tensor name", raw_file("{" + ok_entry + "," + ok_entry + "}", 8), "duplicate tensor name 't'"},
      {"duplicate field", raw_file(R"({"t":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8),
       "duplicate key 'dtype'"},
      {"entry not an object", raw_file(R"({"t":[1]})", 0), "tensor 't' is not an object"},
      {"unknown field", raw_file(R"({"t":{"dtype":"F32","shape":[],"data_offsets":[0,4],"x":1}})", 4),
       "unknown field 'x'"},
      {"missing field", raw_file(R"({"t":{"dtype":"F32","shape":[1]}})", 4), "needs the fields"},
      {"unknown dtype", raw_file(R"({"t":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", 8),
       "unknown dtype \"C64\""},
      {"dtype not a string", raw_file(R"({"t":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4), "unknown dtype 4"},
      {"negative shape", raw_file(R"({"t":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4),
       "not a non-negative integer: -1"},
      {"fractional shape", raw_file(R"({"t":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4),
       "not a non-negative integer: 1.5"},
      {"string shape", raw_file(R"({"t":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", 8),
       "not a non-negative integer"},
      {"shape not an array", raw_file(R"({"t":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8),
       "shape of tensor 't' is not an array"},
      {"overflowing shape",
       raw_file(R"({"t":{"dtype":"F64","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,8]}})", 8),
       "does not fit in the data buffer"},
      {"shape beyond int64", raw_file(R"({"t":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,1]}})", 1),
       "not a non-negative integer"},
      {"offsets of three", raw_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}})", 4),
       "not [begin, end]"},
      {"negative offset", raw_file(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[-4,-4]}})", 0),
       "not [begin, end]"},
      {"begin after end", raw_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8),
       "begin 8 > end 4"},
      {"offsets past the buffer", raw_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 4),
       "past the data buffer"},
      {"byte size mismatch", raw_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 12),
       "spans 8 bytes, but shape [3] of F32 needs 12"},
      {"gap at the start", raw_file(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8),
       "bytes [0, 4) of the data buffer belong to no tensor"},
      {"gap between tensors",
       raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                12),
       "bytes [4, 8) of the data buffer belong to no tensor"},
      {"overlapping tensors",
       raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                8),
       "overlaps tensor"},
      {"trailing garbage", raw_file("{" + ok_entry + "}", 9), "1 trailing bytes after the last tensor"},
      {"buffer without tensors", raw_file("{}", 8), "8 trailing bytes"},
      {"metadata not an object", raw_file(R"({"__metadata__":"pt"})", 0), "__metadata__ is not an object"},
      {"metadata value not a string", raw_file(R"({"__metadata__":{"format":1}})", 0),
       "__metadata__ value of 'format' is not a string"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Bad& c = cases[i];
    const std::string what = c.what;
    CAPTURE(what);
    const std::string path = tmp.path("bad" + std::to_string(i) + ".safetensors");
    write_bytes(path, c.bytes);
    const std::string msg = load_error(path);
    CAPTURE(msg);
    CHECK(msg.find(c.reason) != std::string::npos);
    CHECK(msg.find(path) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);
  }
  // Not a file at all.
  CHECK(load_error(tmp.path("missing.safetensors")).find("cannot open") != std::string::npos);
  CHECK(load_error(tmp.dir.string()).find("not a regular file") != std::string::npos);
}

TEST_CASE("safetensors: random corruptions of a valid file are rejected or read, never crash") {
  Safetensors st;
  st.set<float>("a", {2, 3}, {1, 2, 3, 4, 5, 6});
  st.set<std::int64_t>("b", {1}, {7});
  st.metadata["format"] = "pt";
  const auto good = st.serialize();
  dino::Generator gen(99);
  int rejected = 0, accepted = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    auto bytes = good;
    const int kind = static_cast<int>(gen.below(3));
    if (kind == 0) {  // flip a few bytes
      for (int k = 0, n = 1 + static_cast<int>(gen.below(4)); k < n; ++k)
        bytes[gen.below(bytes.size())] = static_cast<std::uint8_t>(gen.below(256));
    } else if (kind == 1) {  // truncate
      bytes.resize(gen.below(bytes.size()));
    } else {  // append
      bytes.resize(bytes.size() + 1 + gen.below(16), static_cast<std::uint8_t>(gen.below(256)));
    }
    try {
      const Safetensors s = Safetensors::parse(bytes.data(), bytes.size(), "fuzz");
      for (const auto& name : s.names()) s.values<double>(name);
      ++accepted;
    } catch (const dino::Error&) {
      ++rejected;
    }
  }
  CHECK(rejected > 0);
  CHECK(rejected + accepted == 3000);
}

TEST_CASE("safetensors: saving is atomic") {
  TempDir tmp;
  Safetensors first, second;
  first.set<float>("w", {2}, {1, 2});
  second.set<float>("w", {3}, {3, 4, 5});
  const std::string path = tmp.path("ckpt.safetensors");
  first.save(path);
  const auto old_bytes = read_bytes(path);
  CHECK(old_bytes == first.serialize());

  // A successful save replaces the file and leaves nothing else behind.
  second.save(path);
  CHECK(read_bytes(path) == second.serialize());
  first.save(path);

  // Serialisation fails (a name that is not UTF-8): the old file is untouched, no temporary file remains.
  Safetensors bad;
  bad.set<float>("\xff", {1}, {1});
  CHECK_THROWS_AS(bad.save(path), dino::Error);
  CHECK(read_bytes(path) == old_bytes);

  // The target is a folder: rename fails, the folder survives, the temporary file is removed.
  const std::string folder = tmp.path("folder");
  fs::create_directories(folder);
  fs::path inside = fs::path(folder) / "keep.txt";
  std::ofstream(inside) << "keep";
  std::string msg;
  try {
    second.save(folder);
  } catch (const dino::Error& e) {
    msg = e.what();
  }
  CHECK(msg.find("cannot write '" + folder + "'") != std::string::npos);
  CHECK(msg.find("rename") != std::string::npos);
  CHECK(fs::is_directory(folder));
  CHECK(fs::exists(inside));

  // The folder of the target does not exist.
  CHECK_THROWS_AS(second.save(tmp.path("no/such/dir/x.safetensors")), dino::Error);

  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(tmp.dir)) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  CHECK(left == std::vector<std::string>{"ckpt.safetensors", "folder"});
  CHECK(read_bytes(path) == old_bytes);
}
