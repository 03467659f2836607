// The dataset registry (spec §2.1, A2): names, per-dataset statistics (the testbed's datasets/*.py, with
// CIFAR100 fixed to 100 classes and its own statistics), where each dataset's files are looked up, and
// load_dataset, which reads one split into memory. Replaces torchvision's MNIST/CIFAR classes (no download).
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/data/cifar.hpp"
#include "dino/data/idx.hpp"
#include "dino/data/image.hpp"

namespace dino {

// train = the testbed's train=True split; test = train=False, used as the "valid" split.
enum class Split { train, test };

inline const char* split_name(Split split) { return split == Split::train ? "train" : "test"; }

// Where Debian's dataset-fashion-mnist package installs the four .gz idx files: the CLI's default dataset
// therefore works without --data_dir.
inline const std::string& fashion_mnist_system_dir() {
  static const std::string dir = "/usr/share/datasets/fashion-mnist";
  return dir;
}

inline const std::vector<std::string>& dataset_names() {
  static const std::vector<std::string> names{"MNIST", "FashionMNIST", "CIFAR10", "CIFAR100"};
  return names;
}

namespace data_detail {
inline std::string join_names(const std::vector<std::string>& names) {
  std::string s;
  for (std::size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
  return s;
}
}  // namespace data_detail

// Size, class count and Normalize statistics of a dataset; names are exact (as the testbed's choices).
inline DatasetInfo dataset_info(const std::string& name) {
  DatasetInfo info;
  info.name = name;
  if (name == "MNIST") {
    info.native_size = 28, info.classes = 10;
    info.mean = {0.1307, 0.1307, 0.1307}, info.std = {0.3081, 0.3081, 0.3081};
  } else if (name == "FashionMNIST") {
    info.native_size = 28, info.classes = 10;
    info.mean = {0.2860, 0.2860, 0.2860}, info.std = {0.3530, 0.3530, 0.3530};
  } else if (name == "CIFAR10") {
    info.native_size = 32, info.classes = 10;
    info.mean = {0.4914, 0.4822, 0.4465}, info.std = {0.247, 0.243, 0.261};
  } else if (name == "CIFAR100") {
    info.native_size = 32, info.classes = 100;
    info.mean = {0.5071, 0.4865, 0.4409}, info.std = {0.2673, 0.2564, 0.2762};
  } else {
    fail("unknown dataset '", name, "': expected one of ", data_detail::join_names(dataset_names()));
  }
  return info;
}

// The data folder: the --data_dir flag if given, else $DINO_DATA, else "" (then only system copies are found).
inline std::string resolve_data_dir(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("DINO_DATA");
  return env != nullptr ? std::string(env) : std::string();
}

// The folders searched for a dataset's files, in order of preference.
inline std::vector<std::string> dataset_search_dirs(const std::string& name, const std::string& data_dir) {
  namespace fs = std::filesystem;
  (void)dataset_info(name);  // rejects unknown names
  std::vector<std::string> dirs;
  if (!data_dir.empty()) {
    const fs::path root(data_dir);
    if (name == "MNIST" || name == "FashionMNIST") {
      dirs = {(root / name / "raw").string(), (root / name).string(), root.string()};
    } else {
      const char* folder = name == "CIFAR10" ? "cifar-10-batches-bin" : "cifar-100-binary";
      dirs = {(root / folder).string(), (root / name / folder).string()};
    }
  }
  if (name == "FashionMNIST") dirs.push_back(fashion_mnist_system_dir());
  return dirs;
}

// The first existing file among `candidates` (plain names, alternatives of one file) over the search folders,
// folder by folder. Missing: one line naming the dataset, the file and every folder searched.
inline std::string find_dataset_file(const std::string& name, const std::vector<std::string>& candidates,
                                     const std::string& data_dir) {
  namespace fs = std::filesystem;
  const std::vector<std::string> dirs = dataset_search_dirs(name, data_dir);
  for (const std::string& dir : dirs)
    for (const std::string& file : candidates) {
      const fs::path p = fs::path(dir) / file;
      std::error_code ec;
      if (fs::is_regular_file(p, ec)) return p.string();
    }
  std::string msg = name + ": file " + candidates.front();
  for (std::size_t i = 1; i < candidates.size(); ++i) msg += " or " + candidates[i];
  msg += " not found";
  if (!dirs.empty()) msg += " in " + data_detail::join_names(dirs);
  if (data_dir.empty())
    msg += std::string(dirs.empty() ? " (" : " (and ") + "no data folder given: --data_dir or DINO_DATA)";
  fail(msg);
}

// The files a split consists of, resolved on disk: MNIST-like {images, labels}; CIFAR the batches in order.
inline std::vector<std::string> dataset_files(const std::string& name, Split split, const std::string& data_dir) {
  std::vector<std::string> files;
  if (name == "MNIST" || name == "FashionMNIST") {
    const std::string prefix = split == Split::train ? "train" : "t10k";
    for (const char* kind : {"-images-idx3-ubyte", "-labels-idx1-ubyte"}) {
      const std::string base = prefix + kind;
      files.push_back(find_dataset_file(name, {base, base + ".gz"}, data_dir));  // plain first: no inflating
    }
  } else if (name == "CIFAR10") {
    if (split == Split::train)
      for (int b = 1; b <= 5; ++b)
        files.push_back(find_dataset_file(name, {"data_batch_" + std::to_string(b) + ".bin"}, data_dir));
    else
      files.push_back(find_dataset_file(name, {"test_batch.bin"}, data_dir));
  } else if (name == "CIFAR100") {
    files.push_back(find_dataset_file(name, {split == Split::train ? "train.bin" : "test.bin"}, data_dir));
  } else {
    (void)dataset_info(name);  // throws the list of names
  }
  return files;
}

// One split of a dataset in memory. data_dir: as resolve_data_dir returns it ("" searches system copies only).
inline ImageSet load_dataset(const std::string& name, Split split, const std::string& data_dir) {
  const DatasetInfo info = dataset_info(name);
  const std::vector<std::string> files = dataset_files(name, split, data_dir);
  if (name == "MNIST" || name == "FashionMNIST") return read_idx_pair(files[0], files[1], info);
  return read_cifar_batches(files, info, name == "CIFAR100");
}

}  // namespace dino
