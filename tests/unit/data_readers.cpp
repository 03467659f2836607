// Dataset readers: idx (plain and gzip) and CIFAR binary round trips on files written here, the registry and
// its lookup order, the Debian FashionMNIST copy when installed, and one malformed file per validation rule
// (each rejected with a one-line dino::Error naming the file).
#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "dino/data/datasets.hpp"

#include "../support/temp_dir.hpp"

namespace fs = std::filesystem;
using dino::DatasetInfo;
using dino::ImageSet;
using dino::Split;
using Bytes = std::vector<std::uint8_t>;

namespace {

using TempDir = dino::testing::TempDir;

void write_file(const std::string& path, const Bytes& bytes) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(f.good());
}

void put_be32(Bytes& b, std::uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(v >> s));
}

Bytes idx_bytes(std::uint32_t magic, const std::vector<std::uint32_t>& dims, const Bytes& payload) {
  Bytes b;
  put_be32(b, magic);
  for (std::uint32_t d : dims) put_be32(b, d);
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

// Deterministic pixel values that differ between images, rows, columns and channels.
std::uint8_t pattern(std::size_t i) { return static_cast<std::uint8_t>((i * 37 + (i >> 8) * 11 + 5) & 0xff); }

Bytes grey_pixels(std::size_t n, int side) {
  Bytes px(n * side * side);
  for (std::size_t i = 0; i < px.size(); ++i) px[i] = pattern(i);
  return px;
}

Bytes idx_images(std::uint32_t n, int side, const Bytes& px) {
  return idx_bytes(0x00000803u, {n, std::uint32_t(side), std::uint32_t(side)}, px);
}
Bytes idx_labels(const Bytes& labels) { return idx_bytes(0x00000801u, {std::uint32_t(labels.size())}, labels); }

// A gzip stream made with zlib's deflate (windowBits 15 + 16 writes the gzip wrapper).
Bytes gzip(const Bytes& in) {
  z_stream zs{};
  REQUIRE(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  Bytes out(deflateBound(&zs, static_cast<uLong>(in.size())) + 64);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  REQUIRE(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// The message of the dino::Error that fn throws ("" and a failed check if it throws nothing or something else).
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const dino::Error& e) {
    return e.what();
  } catch (...) {
    FAIL_CHECK("threw something other than dino::Error");
    return "";
  }
  FAIL_CHECK("did not throw");
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Checks that reading throws one line that names `file` and contains `expect`.
void check_rejects(const std::function<void()>& fn, const std::string& file, const std::string& expect) {
  const std::string msg = error_of(fn);
  INFO("message: " << msg);
  CHECK(contains(msg, file));
  CHECK(contains(msg, expect));
  CHECK(!contains(msg, "\n"));
}

// A CIFAR record: label byte(s), then R, G, B planes; pixel (y, x) of channel c is cifar_px(rec, c, y, x).
std::uint8_t cifar_px(int rec, int c, int y, int x) { return static_cast<std::uint8_t>(rec * 50 + c * 80 + y * 3 + x); }

Bytes cifar_record(int rec, const std::vector<std::uint8_t>& label_bytes) {
  Bytes b(label_bytes);
  for (int c = 0; c < 3; ++c)
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x) b.push_back(cifar_px(rec, c, y, x));
  return b;
}

Bytes concat(const std::vector<Bytes>& parts) {
  Bytes b;
  for (const Bytes& p : parts) b.insert(b.end(), p.begin(), p.end());
  return b;
}

// MNIST-like files with 2 images of 28x28 whose labels are all `label`, under `dir`, optionally gzip.
void write_mnist_split(const std::string& dir, const std::string& prefix, std::uint8_t label, bool gz) {
  Bytes images = idx_images(2, 28, grey_pixels(2, 28)), labels = idx_labels({label, label});
  if (gz) images = gzip(images), labels = gzip(labels);
  const std::string ext = gz ? ".gz" : "";
  write_file(dir + "/" + prefix + "-images-idx3-ubyte" + ext, images);
  write_file(dir + "/" + prefix + "-labels-idx1-ubyte" + ext, labels);
}

struct EnvGuard {  // restores DINO_DATA after a test changes it
  bool had;
  std::string value;
  EnvGuard() : had(std::getenv("DINO_DATA") != nullptr), value(had ? std::getenv("DINO_DATA") : "") {}
  ~EnvGuard() {
    if (had) ::setenv("DINO_DATA", value.c_str(), 1);
    else ::unsetenv("DINO_DATA");
  }
};

}  // namespace

TEST_CASE("readers: idx round trip, plain and gzip, pixels and labels exact") {
  TempDir tmp;
  const DatasetInfo info = dino::dataset_info("MNIST");
  const Bytes px = grey_pixels(3, 28), labels{7, 0, 9};
  const Bytes images_file = idx_images(3, 28, px), labels_file = idx_labels(labels);
  write_file(tmp / "img", images_file);
  write_file(tmp / "lbl", labels_file);
  write_file(tmp / "img.gz", gzip(images_file));
  write_file(tmp / "lbl.gz", gzip(labels_file));
  // gzip allows several members in one file; the reader concatenates them as gzip -d does.
  const Bytes half1(images_file.begin(), images_file.begin() + 1000);
  const Bytes half2(images_file.begin() + 1000, images_file.end());
  write_file(tmp / "img2.gz", concat({gzip(half1), gzip(half2)}));

  for (const auto& pair : std::vector<std::pair<std::string, std::string>>{
           {"img", "lbl"}, {"img.gz", "lbl.gz"}, {"img", "lbl.gz"}, {"img2.gz", "lbl"}}) {
    const std::string &img = pair.first, &lbl = pair.second;  // not a structured binding: CAPTURE is a lambda
    CAPTURE(img);
    const ImageSet set = dino::read_idx_pair(tmp / img, tmp / lbl, info);
    CHECK(set.n == 3);
    CHECK(set.h == 28);
    CHECK(set.w == 28);
    CHECK(set.stored_channels == 1);
    CHECK(set.info.name == "MNIST");
    CHECK(set.pixels == px);
    CHECK(set.labels == std::vector<std::int64_t>{7, 0, 9});
    const dino::Image im = set.image(2);  // grey replicated to RGB
    CHECK(im.c == 3);
    CHECK(im.at(5, 9, 0) == px[2 * 784 + 5 * 28 + 9]);
    CHECK(im.at(5, 9, 1) == im.at(5, 9, 0));
    CHECK(im.at(5, 9, 2) == im.at(5, 9, 0));
  }
}

TEST_CASE("readers: every malformed idx file is rejected naming the file") {
  TempDir tmp;
  const DatasetInfo info = dino::dataset_info("MNIST");
  const Bytes px = grey_pixels(2, 28);
  const Bytes good_images = idx_images(2, 28, px), good_labels = idx_labels({1, 2});
  write_file(tmp / "images", good_images);
  write_file(tmp / "labels", good_labels);
  REQUIRE_NOTHROW(dino::read_idx_pair(tmp / "images", tmp / "labels", info));

  auto rejects_images = [&](const std::string& name, const Bytes& bytes, const std::string& expect) {
    write_file(tmp / name, bytes);
    check_rejects([&] { dino::read_idx_pair(tmp / name, tmp / "labels", info); }, tmp / name, expect);
  };
  auto rejects_labels = [&](const std::string& name, const Bytes& bytes, const std::string& expect) {
    write_file(tmp / name, bytes);
    check_rejects([&] { dino::read_idx_pair(tmp / "images", tmp / name, info); }, tmp / name, expect);
  };

  rejects_images("magic_float", idx_bytes(0x00000d03u, {2, 28, 28}, px), "magic");
  rejects_images("magic_high", idx_bytes(0x01000803u, {2, 28, 28}, px), "magic");
  rejects_images("labels_as_images", good_labels, "dims");
  rejects_labels("images_as_labels", good_images, "dims");
  rejects_labels("labels_2d", idx_bytes(0x00000802u, {2, 1}, {1, 2}), "dims");
  rejects_images("truncated_payload", Bytes(good_images.begin(), good_images.end() - 1), "truncated");
  rejects_images("truncated_header", Bytes(good_images.begin(), good_images.begin() + 10), "truncated");
  rejects_images("short_magic", Bytes(good_images.begin(), good_images.begin() + 3), "bytes");
  rejects_images("empty", Bytes{}, "bytes");
  rejects_images("huge_dims", idx_bytes(0x00000803u, {0xffffffffu, 0xffffffffu, 0xffffffffu}, px), "truncated");
  Bytes trailing = good_images;
  trailing.push_back(0);
  rejects_images("trailing", trailing, "trailing");
  rejects_labels("trailing_labels", idx_bytes(0x00000801u, {2}, {1, 2, 3}), "trailing");
  rejects_images("wrong_size", idx_bytes(0x00000803u, {2, 27, 28}, Bytes(2 * 27 * 28, 0)), "28x28");
  rejects_images("no_images", idx_bytes(0x00000803u, {0, 28, 28}, {}), "at least one");
  rejects_labels("three_labels", idx_labels({1, 2, 3}), "equal counts");
  rejects_labels("label_10", idx_labels({1, 10}), "label 10");
  rejects_labels("label_255", idx_labels({255, 1}), "label 255");
  check_rejects([&] { dino::read_idx_pair(tmp / "absent", tmp / "labels", info); }, tmp / "absent", "not found");
  fs::create_directories(tmp / "a_folder");
  check_rejects([&] { dino::read_idx_pair(tmp / "a_folder", tmp / "labels", info); }, tmp / "a_folder", "regular");

  // gzip: cut short, a flipped byte in the deflate data, garbage after the stream, trailer lies.
  const Bytes gz = gzip(good_images);
  rejects_images("cut.gz", Bytes(gz.begin(), gz.end() - 9), "truncated gzip");
  rejects_images("cut_header.gz", Bytes(gz.begin(), gz.begin() + 5), "gzip");
  Bytes flipped = gz;
  flipped[gz.size() / 2] ^= 0x55;
  rejects_images("flipped.gz", flipped, "gzip");
  Bytes bad_crc = gz;
  bad_crc[gz.size() - 6] ^= 0x01;
  rejects_images("bad_crc.gz", bad_crc, "corrupt gzip");
  Bytes garbage = gz;
  garbage.insert(garbage.end(), {1, 2, 3});
  rejects_images("garbage.gz", garbage, "trailing");
  // The announced size only sizes the first buffer: a false trailer must still read right or fail cleanly.
  Bytes big_isize = gz;
  for (int k = 1; k <= 4; ++k) big_isize[gz.size() - k] = 0xff;
  rejects_images("big_isize.gz", big_isize, "corrupt gzip");
  // A well-formed gzip of a malformed idx is still caught by the idx checks.
  rejects_images("trailing.gz", gzip(trailing), "trailing");
}

TEST_CASE("readers: every truncation of a valid idx file, plain or gzip, is an error, never a crash") {
  TempDir tmp;
  const DatasetInfo info = dino::dataset_info("MNIST");
  const Bytes images = idx_images(2, 28, grey_pixels(2, 28)), labels = idx_labels({3, 4});
  const Bytes gz = gzip(labels), gz_images = gzip(images);
  write_file(tmp / "images", images);
  int rejected = 0, total = 0;
  for (std::size_t len = 0; len < labels.size(); ++len, ++total) {
    write_file(tmp / "l", Bytes(labels.begin(), labels.begin() + static_cast<std::ptrdiff_t>(len)));
    rejected += !error_of([&] { dino::read_idx_pair(tmp / "images", tmp / "l", info); }).empty();
  }
  for (std::size_t len = 0; len < gz.size(); ++len, ++total) {
    write_file(tmp / "l.gz", Bytes(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(len)));
    rejected += !error_of([&] { dino::read_idx_pair(tmp / "images", tmp / "l.gz", info); }).empty();
  }
  for (std::size_t len = 0; len < gz_images.size(); len += 7, ++total) {
    write_file(tmp / "i.gz", Bytes(gz_images.begin(), gz_images.begin() + static_cast<std::ptrdiff_t>(len)));
    rejected += !error_of([&] { dino::read_idx_pair(tmp / "i.gz", tmp / "l", info); }).empty();
  }
  CHECK(rejected == total);
}

TEST_CASE("readers: random corruptions of idx files, plain or gzip, are an error or a valid set, never a crash") {
  TempDir tmp;
  const DatasetInfo info = dino::dataset_info("MNIST");
  const Bytes images = idx_images(2, 28, grey_pixels(2, 28)), labels = idx_labels({3, 4});
  write_file(tmp / "l", labels);
  std::uint64_t state = 12345;
  auto next = [&state](std::uint64_t bound) {  // splitmix64: fixed, portable draws
    state += 0x9e3779b97f4a7c15ull;
    std::uint64_t z = state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (z ^ (z >> 31)) % bound;
  };
  int errors = 0, reads = 0;
  for (int trial = 0; trial < 400; ++trial) {
    Bytes b = trial % 2 ? gzip(images) : images;
    // Corrupt mostly the header and the gzip framing, where the lengths live.
    for (std::uint64_t k = 0, flips = 1 + next(4); k < flips; ++k) {
      const std::size_t at = next(3) ? next(std::min<std::size_t>(b.size(), 32)) : next(b.size());
      b[at] = static_cast<std::uint8_t>(next(256));
    }
    write_file(tmp / "i", b);
    try {
      const ImageSet set = dino::read_idx_pair(tmp / "i", tmp / "l", info);
      CHECK(set.pixels.size() == 2u * 784u);
      ++reads;
    } catch (const dino::Error& e) {
      CHECK(contains(e.what(), tmp / "i"));
      ++errors;
    }
  }
  CHECK(errors + reads == 400);
  CHECK(errors > 100);  // most header corruptions must be caught
}

TEST_CASE("readers: CIFAR-10 records, channel-major to HWC, several batches in order") {
  TempDir tmp;
  const DatasetInfo info = dino::dataset_info("CIFAR10");
  write_file(tmp / "a.bin", concat({cifar_record(0, {3}), cifar_record(1, {9})}));
  write_file(tmp / "b.bin", cifar_record(2, {0}));
  const ImageSet set = dino::read_cifar_batches({tmp / "a.bin", tmp / "b.bin"}, info, false);
  CHECK(set.n == 3);
  CHECK(set.h == 32);
  CHECK(set.w == 32);
  CHECK(set.stored_channels == 3);
  CHECK(set.labels == std::vector<std::int64_t>{3, 9, 0});
  REQUIRE(set.pixels.size() == 3u * 3072u);
  int mismatches = 0;
  for (int r = 0; r < 3; ++r) {
    const dino::Image im = set.image(r);
    for (int y = 0; y < 32; ++y)
      for (int x = 0; x < 32; ++x)
        for (int c = 0; c < 3; ++c) mismatches += im.at(y, x, c) != cifar_px(r, c, y, x);
  }
  CHECK(mismatches == 0);
  // Interleaved in the raw buffer too: pixel (y=1, x=2) of image 1 is R, G, B at 3 * (32 + 2).
  const std::size_t at = 3072 + 3 * (32 + 2);
  CHECK(set.pixels[at + 0] == cifar_px(1, 0, 1, 2));
  CHECK(set.pixels[at + 1] == cifar_px(1, 1, 1, 2));
  CHECK(set.pixels[at + 2] == cifar_px(1, 2, 1, 2));
}

TEST_CASE("readers: CIFAR-100 uses the fine label and skips both label bytes") {
  TempDir tmp;
  const DatasetInfo info = dino::dataset_info("CIFAR100");
  write_file(tmp / "train.bin", concat({cifar_record(0, {19, 99}), cifar_record(1, {4, 42})}));
  const ImageSet set = dino::read_cifar_batches({tmp / "train.bin"}, info, true);
  CHECK(set.n == 2);
  CHECK(set.info.classes == 100);
  CHECK(set.labels == std::vector<std::int64_t>{99, 42});
  CHECK(set.image(1).at(0, 0, 0) == cifar_px(1, 0, 0, 0));
  CHECK(set.image(1).at(31, 31, 2) == cifar_px(1, 2, 31, 31));
  // The same bytes read as CIFAR-10 are misaligned records: rejected by size, not silently misread.
  check_rejects([&] { dino::read_cifar_batches({tmp / "train.bin"}, dino::dataset_info("CIFAR10"), false); },
                tmp / "train.bin", "whole number");
}

TEST_CASE("readers: every malformed CIFAR file is rejected naming the file") {
  TempDir tmp;
  const DatasetInfo c10 = dino::dataset_info("CIFAR10"), c100 = dino::dataset_info("CIFAR100");
  write_file(tmp / "good.bin", cifar_record(0, {1}));
  write_file(tmp / "good100.bin", cifar_record(0, {1, 1}));
  // A valid batch first: the bad one must be named, not the first of the list.
  auto rejects = [&](const std::string& name, const Bytes& bytes, bool cifar100, const std::string& expect) {
    write_file(tmp / name, bytes);
    const std::string good = tmp / (cifar100 ? "good100.bin" : "good.bin");
    check_rejects([&] { dino::read_cifar_batches({good, tmp / name}, cifar100 ? c100 : c10, cifar100); },
                  tmp / name, expect);
  };
  const Bytes rec = cifar_record(0, {1});
  rejects("empty.bin", {}, false, "non-empty");
  rejects("short.bin", Bytes(rec.begin(), rec.end() - 1), false, "3073");
  Bytes extra = concat({rec, rec});
  extra.push_back(0);
  rejects("extra.bin", extra, false, "whole number");
  rejects("label10.bin", cifar_record(0, {10}), false, "label 10");
  rejects("fine100.bin", cifar_record(0, {1, 100}), true, "label 100");
  rejects("coarse20.bin", cifar_record(0, {20, 5}), true, "coarse label 20");
  check_rejects([&] { dino::read_cifar_batches({tmp / "good.bin", tmp / "absent.bin"}, c10, false); },
                tmp / "absent.bin", "not found");
}

TEST_CASE("readers: registry names, statistics, unknown names and the data folder") {
  CHECK(dino::dataset_names() == std::vector<std::string>{"MNIST", "FashionMNIST", "CIFAR10", "CIFAR100"});
  const DatasetInfo m = dino::dataset_info("MNIST"), f = dino::dataset_info("FashionMNIST");
  const DatasetInfo c10 = dino::dataset_info("CIFAR10"), c100 = dino::dataset_info("CIFAR100");
  CHECK(m.native_size == 28);
  CHECK(m.classes == 10);
  CHECK(m.mean == std::array<double, 3>{0.1307, 0.1307, 0.1307});
  CHECK(m.std == std::array<double, 3>{0.3081, 0.3081, 0.3081});
  CHECK(f.native_size == 28);
  CHECK(f.mean == std::array<double, 3>{0.2860, 0.2860, 0.2860});
  CHECK(f.std == std::array<double, 3>{0.3530, 0.3530, 0.3530});
  CHECK(c10.native_size == 32);
  CHECK(c10.classes == 10);
  CHECK(c10.mean == std::array<double, 3>{0.4914, 0.4822, 0.4465});
  CHECK(c10.std == std::array<double, 3>{0.247, 0.243, 0.261});
  CHECK(c100.classes == 100);
  CHECK(c100.mean == std::array<double, 3>{0.5071, 0.4865, 0.4409});
  CHECK(c100.std == std::array<double, 3>{0.2673, 0.2564, 0.2762});
  const std::string msg = error_of([] { dino::dataset_info("mnist"); });
  CHECK(contains(msg, "'mnist'"));
  CHECK(contains(msg, "MNIST, FashionMNIST, CIFAR10, CIFAR100"));
  CHECK_THROWS_AS(dino::load_dataset("TinyImageNet", Split::train, "/tmp"), dino::Error);

  EnvGuard guard;
  ::setenv("DINO_DATA", "/from/env", 1);
  CHECK(dino::resolve_data_dir("/from/flag") == "/from/flag");
  CHECK(dino::resolve_data_dir("") == "/from/env");
  ::unsetenv("DINO_DATA");
  CHECK(dino::resolve_data_dir("") == "");
  CHECK(dino::resolve_data_dir("x") == "x");
}

TEST_CASE("readers: MNIST lookup order raw/, then <Name>/, then the data folder; plain before .gz") {
  TempDir tmp;
  const std::string root = tmp.dir.string();
  write_mnist_split(root, "t10k", 1, false);
  write_mnist_split(root + "/MNIST", "t10k", 2, true);
  write_mnist_split(root + "/MNIST/raw", "t10k", 3, false);
  write_mnist_split(root + "/MNIST/raw", "t10k", 4, true);  // same folder: the plain file wins
  auto first_label = [&] { return dino::load_dataset("MNIST", Split::test, root).labels.at(0); };
  CHECK(first_label() == 3);
  fs::remove(root + "/MNIST/raw/t10k-images-idx3-ubyte");
  fs::remove(root + "/MNIST/raw/t10k-labels-idx1-ubyte");
  CHECK(first_label() == 4);
  fs::remove_all(root + "/MNIST/raw");
  CHECK(first_label() == 2);
  fs::remove_all(root + "/MNIST");
  CHECK(first_label() == 1);
  CHECK(dino::dataset_files("MNIST", Split::test, root) ==
        std::vector<std::string>{root + "/t10k-images-idx3-ubyte", root + "/t10k-labels-idx1-ubyte"});

  // The train split is a different pair of files, and its absence names every folder searched.
  const std::string msg = error_of([&] { dino::load_dataset("MNIST", Split::train, root); });
  INFO(msg);
  CHECK(contains(msg, "MNIST"));
  CHECK(contains(msg, "train-images-idx3-ubyte"));
  CHECK(contains(msg, root + "/MNIST/raw"));
  CHECK(contains(msg, root + "/MNIST,"));
  CHECK(contains(msg, ", " + root));
  CHECK(!contains(msg, "\n"));
  const std::string no_dir = error_of([] { dino::load_dataset("MNIST", Split::test, ""); });
  CHECK(contains(no_dir, "DINO_DATA"));
}

TEST_CASE("readers: CIFAR lookup, batch order and splits") {
  TempDir tmp;
  const std::string root = tmp.dir.string();
  // Nested layout only: found in <data_dir>/CIFAR10/cifar-10-batches-bin.
  for (int b = 1; b <= 5; ++b)
    write_file(root + "/CIFAR10/cifar-10-batches-bin/data_batch_" + std::to_string(b) + ".bin",
               cifar_record(b, {std::uint8_t(b)}));
  write_file(root + "/CIFAR10/cifar-10-batches-bin/test_batch.bin", cifar_record(0, {7}));
  const ImageSet train = dino::load_dataset("CIFAR10", Split::train, root);
  CHECK(train.n == 5);
  CHECK(train.labels == std::vector<std::int64_t>{1, 2, 3, 4, 5});
  CHECK(train.image(4).at(3, 4, 1) == cifar_px(5, 1, 3, 4));
  CHECK(dino::load_dataset("CIFAR10", Split::test, root).labels == std::vector<std::int64_t>{7});
  // The flat layout comes first.
  write_file(root + "/cifar-10-batches-bin/test_batch.bin", cifar_record(0, {8}));
  CHECK(dino::load_dataset("CIFAR10", Split::test, root).labels == std::vector<std::int64_t>{8});
  // A missing batch names itself and both folders.
  fs::remove(root + "/CIFAR10/cifar-10-batches-bin/data_batch_3.bin");
  const std::string msg = error_of([&] { dino::load_dataset("CIFAR10", Split::train, root); });
  CHECK(contains(msg, "data_batch_3.bin"));
  CHECK(contains(msg, root + "/cifar-10-batches-bin"));
  CHECK(contains(msg, root + "/CIFAR10/cifar-10-batches-bin"));

  write_file(root + "/CIFAR100/cifar-100-binary/train.bin", cifar_record(0, {2, 77}));
  write_file(root + "/cifar-100-binary/test.bin", cifar_record(0, {3, 55}));
  const ImageSet c100 = dino::load_dataset("CIFAR100", Split::train, root);
  CHECK(c100.info.classes == 100);
  CHECK(c100.labels == std::vector<std::int64_t>{77});
  CHECK(dino::load_dataset("CIFAR100", Split::test, root).labels == std::vector<std::int64_t>{55});
}

TEST_CASE("readers: FashionMNIST from a data folder, else Debian's copy") {
  TempDir tmp;
  const std::string root = tmp.dir.string();
  write_mnist_split(root + "/FashionMNIST", "t10k", 5, false);
  CHECK(dino::load_dataset("FashionMNIST", Split::test, root).labels.at(0) == 5);
  CHECK(dino::dataset_search_dirs("FashionMNIST", root).back() == dino::fashion_mnist_system_dir());
  CHECK(dino::dataset_search_dirs("FashionMNIST", "") == std::vector<std::string>{dino::fashion_mnist_system_dir()});
  CHECK(dino::dataset_search_dirs("MNIST", "").empty());

  if (!fs::exists(dino::fashion_mnist_system_dir() + "/t10k-images-idx3-ubyte.gz")) {
    MESSAGE("Debian's dataset-fashion-mnist is not installed: the fallback is not exercised");
    return;
  }
  fs::remove_all(root + "/FashionMNIST");
  for (const std::string& dir : {std::string(), root}) {  // no data folder; a data folder without it
    const ImageSet set = dino::load_dataset("FashionMNIST", Split::test, dir);
    CHECK(set.n == 10000);
    CHECK(set.h == 28);
    CHECK(set.w == 28);
    CHECK(set.stored_channels == 1);
    CHECK(set.pixels.size() == 10000u * 784u);
    std::vector<int> hist(10, 0);
    bool in_range = true;
    for (std::int64_t l : set.labels) {
      in_range = in_range && l >= 0 && l < 10;
      if (in_range) ++hist[static_cast<std::size_t>(l)];
    }
    CHECK(in_range);
    CHECK(hist == std::vector<int>(10, 1000));
  }
  const auto t0 = std::chrono::steady_clock::now();
  const ImageSet train = dino::load_dataset("FashionMNIST", Split::train, "");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("FashionMNIST train (60000 images, gzip) read in " << seconds << " s");
  CHECK(train.n == 60000);
  std::vector<int> hist(10, 0);
  for (std::int64_t l : train.labels) ++hist.at(static_cast<std::size_t>(l));
  CHECK(hist == std::vector<int>(10, 6000));
}
