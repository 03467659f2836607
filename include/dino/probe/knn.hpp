// The kNN probe: the testbed's dinopl/probing.py `KNNAnalysis` (faiss.IndexFlat: exact squared-L2 search,
// spec §10 and A8): the k nearest train rows of every query row, ordered by (distance, train index), and the
// unweighted majority vote of their labels with vote ties to the smallest label (torch.mode on the CPU).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/tensor.hpp"

namespace dino::probe {

struct KnnOptions {
  Index k = 20;
  // Query rows per distance block (0: as many as keep a block near 4M distances). Changes no result.
  Index block_rows = 0;
};

namespace detail {

// Checks that labels has `rows` entries; with n_classes > 0 also that each lies in [0, n_classes).
inline void check_labels(const char* what, const std::vector<std::int64_t>& labels, Index rows, Index n_classes) {
  DINO_CHECK(static_cast<Index>(labels.size()) == rows, what, ": ", labels.size(), " labels for ", rows, " rows");
  for (std::size_t i = 0; i < labels.size(); ++i)
    DINO_CHECK(labels[i] >= 0 && (n_classes <= 0 || labels[i] < n_classes), what, ": label ", labels[i], " of row ",
               i, " is outside [0, ", n_classes > 0 ? n_classes : std::numeric_limits<Index>::max(), ")");
}

// The column means of x [n, e], summed in double in row order.
template <class T>
std::vector<double> column_means(const std::vector<T>& x, Index n, Index e) {
  std::vector<double> mean(static_cast<std::size_t>(e), 0.0);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < e; ++j) mean[static_cast<std::size_t>(j)] += static_cast<double>(x[static_cast<std::size_t>(i * e + j)]);
  for (double& m : mean) m /= static_cast<double>(n);
  return mean;
}
// Subtracts the column means from x [n, e] in place: distances do not change, but the norms that scale the
// GEMM's rounding error shrink to the spread of the data (features after a ReLU share a large offset).
template <class T>
void subtract_means(std::vector<T>& x, Index n, Index e, const std::vector<double>& mean) {
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < e; ++j) {
      T& v = x[static_cast<std::size_t>(i * e + j)];
      v = static_cast<T>(static_cast<double>(v) - mean[static_cast<std::size_t>(j)]);
    }
}

// Squared L2 distance of two rows of e values of T, in double, in index order.
template <class T>
double squared_distance(const T* a, const T* b, Index e) {
  double s = 0;
  for (Index j = 0; j < e; ++j) {
    const double d = static_cast<double>(a[j]) - static_cast<double>(b[j]);
    s += d * d;
  }
  return s;
}

// The most frequent of the labels, ties to the smallest (sorts the span).
inline std::int64_t majority_vote(std::int64_t* first, std::int64_t* last) {
  std::sort(first, last);
  std::int64_t best = first != last ? *first : 0;
  Index best_count = 0;
  for (std::int64_t* run = first; run != last;) {
    std::int64_t* end = run;
    while (end != last && *end == *run) ++end;
    if (end - run > best_count) {  // strictly more: an equal count keeps the smaller label seen first
      best_count = end - run;
      best = *run;
    }
    run = end;
  }
  return best;
}

}  // namespace detail

// The k nearest rows of train [N, E] for every row of query [M, E]: neighbours [M, k] (row-major) of train
// indices, each row ordered by squared L2 distance, ties to the smaller train index. k must be in [1, N].
//
// The backend's GEMM computes ||b||^2 - 2 a.b for blocks of queries; its rounding error is bounded
// (delta below) and every train row whose GEMM value lies within 2 delta of the k-th smallest is a candidate,
// which contains the exact k nearest and their boundary ties. The candidates are then ranked by distances
// summed in double in index order, so the result depends neither on the GEMM's rounding nor on the thread
// count nor on the backend. Only when more than max(16 k, 1024) train rows fall within that margin (features
// collapsed to a point) are the candidates cut to that many by the GEMM's values.
template <class T, class B>
std::vector<Index> knn_neighbours(Ctx<B>& ctx, const Tensor<T, B>& train, const Tensor<T, B>& query,
                                  const KnnOptions& o) {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  DINO_CHECK(train.rank() == 2 && query.rank() == 2 && train.size(1) == query.size(1),
             "kNN probe: train ", train.shape().str(), " and query ", query.shape().str(),
             " must be [N, E] and [M, E] with the same E");
  const Index n = train.size(0), m = query.size(0), e = train.size(1), k = o.k;
  DINO_CHECK(k >= 1 && k <= n, "kNN probe: k = ", k, " must be in [1, N] for N = ", n, " train rows");
  DINO_CHECK(o.block_rows >= 0, "kNN probe: block_rows must be >= 0, got ", o.block_rows);
  std::vector<Index> out(static_cast<std::size_t>(m * k));
  if (m == 0) return out;

  // The candidates' distances are summed from host copies of the features as given (centring rounds, and
  // would split exact ties); the GEMM gets centred copies, with their norms.
  const std::vector<T> xt = train.to_host();
  const std::vector<T> xq = query.to_host();
  std::vector<T> cq = xq;
  const std::vector<double> mean = detail::column_means(xt, n, e);
  detail::subtract_means(cq, m, e, mean);
  std::vector<double> sq(static_cast<std::size_t>(n));
  double max_norm = 0;
  Tensor<T, B> dtrain;
  {
    std::vector<T> ct = xt;
    detail::subtract_means(ct, n, e, mean);
    for (Index i = 0; i < n; ++i) {
      double s = 0;
      const T* r = ct.data() + i * e;
      for (Index j = 0; j < e; ++j) s += static_cast<double>(r[j]) * static_cast<double>(r[j]);
      sq[static_cast<std::size_t>(i)] = s;
      max_norm = std::max(max_norm, std::sqrt(s));
    }
    dtrain = Tensor<T, B>::from_host({n, e}, ct);
  }

  const Index rows = o.block_rows > 0 ? o.block_rows : std::max<Index>(1, (Index(1) << 22) / n);
  const Index cap = std::max<Index>(16 * k, 1024);
  // The GEMM's dot products carry at most gamma_E |a| |b| error, the centring u (|a| + |b|)^2 in the distance;
  // 2 (E + 4) eps(T) (|a| + max |b|)^2 bounds both with a margin (eps = 2u).
  const double rel = 2.0 * static_cast<double>(e + 4) * static_cast<double>(std::numeric_limits<T>::epsilon());
  Tensor<T, B> dq, dots;
  std::vector<T> hdots;
  for (Index r0 = 0; r0 < m; r0 += rows) {
    const Index mb = std::min(rows, m - r0);
    dq.resize({mb, e});
    B::copy_from_host(dq.data(), cq.data() + r0 * e, mb * e);
    dots.resize({mb, n});
    B::gemm(ctx, false, true, mb, n, e, T(1), dq.data(), e, dtrain.data(), e, T(0), dots.data(), n);
    hdots.resize(static_cast<std::size_t>(mb * n));
    B::copy_to_host(hdots.data(), dots.data(), mb * n);

    // Rows are independent (no exception escapes the loop body), so any thread split gives the same result.
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 4)
#endif
    for (Index r = 0; r < mb; ++r) {
      const T* q = xq.data() + (r0 + r) * e;
      const T* c = cq.data() + (r0 + r) * e;
      const T* d = hdots.data() + r * n;
      double qn = 0;
      for (Index j = 0; j < e; ++j) qn += static_cast<double>(c[j]) * static_cast<double>(c[j]);
      const double delta = rel * (std::sqrt(qn) + max_norm) * (std::sqrt(qn) + max_norm) +
                           std::numeric_limits<double>::min();
      // NaN (non-finite features) as +inf, so that the selection below sees a total order.
      auto approx = [&](Index i) {
        const double a = sq[static_cast<std::size_t>(i)] - 2.0 * static_cast<double>(d[i]);
        return std::isnan(a) ? std::numeric_limits<double>::infinity() : a;
      };
      // The k-th smallest GEMM value: a max-heap of the k smallest seen.
      std::vector<double> heap;
      heap.reserve(static_cast<std::size_t>(k));
      for (Index i = 0; i < n; ++i) {
        const double a = approx(i);
        if (static_cast<Index>(heap.size()) < k) {
          heap.push_back(a);
          std::push_heap(heap.begin(), heap.end());
        } else if (a < heap.front()) {
          std::pop_heap(heap.begin(), heap.end());
          heap.back() = a;
          std::push_heap(heap.begin(), heap.end());
        }
      }
      const double limit =
          std::isnan(delta) ? std::numeric_limits<double>::infinity() : heap.front() + 2 * delta;
      std::vector<std::pair<double, Index>> cand;  // holds the k values of the heap at least
      for (Index i = 0; i < n; ++i) {
        const double a = approx(i);
        if (a <= limit) cand.emplace_back(a, i);
      }
      if (static_cast<Index>(cand.size()) > cap) {
        std::nth_element(cand.begin(), cand.begin() + cap, cand.end());
        cand.resize(static_cast<std::size_t>(cap));
      }
      for (auto& cd : cand) cd.first = detail::squared_distance(q, xt.data() + cd.second * e, e);
      // NaN distances (non-finite features) rank last, then by index: a total order in every case.
      std::partial_sort(cand.begin(), cand.begin() + k, cand.end(), [](const auto& a, const auto& b) {
        const bool an = std::isnan(a.first), bn = std::isnan(b.first);
        if (an != bn) return bn;
        if (!an && a.first != b.first) return a.first < b.first;
        return a.second < b.second;
      });
      Index* dst = out.data() + (r0 + r) * k;
      for (Index j = 0; j < k; ++j) dst[j] = cand[static_cast<std::size_t>(j)].second;
    }
  }
  return out;
}

// Predicted labels [M] of the query rows: the majority vote of the labels of their k nearest train rows
// (ties to the smallest label). train_labels [N].
template <class T, class B>
std::vector<std::int64_t> knn_predict(Ctx<B>& ctx, const Tensor<T, B>& train, const std::vector<std::int64_t>& train_labels,
                                      const Tensor<T, B>& query, const KnnOptions& o) {
  DINO_CHECK(train.rank() == 2, "kNN probe: the train features must be [N, E], got ", train.shape().str());
  detail::check_labels("kNN probe train", train_labels, train.size(0), 0);
  const std::vector<Index> nb = knn_neighbours(ctx, train, query, o);
  const Index m = query.size(0), k = o.k;
  std::vector<std::int64_t> pred(static_cast<std::size_t>(m)), votes(static_cast<std::size_t>(k));
  for (Index r = 0; r < m; ++r) {
    for (Index j = 0; j < k; ++j)
      votes[static_cast<std::size_t>(j)] = train_labels[static_cast<std::size_t>(nb[static_cast<std::size_t>(r * k + j)])];
    pred[static_cast<std::size_t>(r)] = detail::majority_vote(votes.data(), votes.data() + k);
  }
  return pred;
}

// Top-1 accuracy in [0, 1]: the fraction of predictions equal to their label (torchmetrics' micro accuracy).
inline double accuracy(const std::vector<std::int64_t>& pred, const std::vector<std::int64_t>& labels) {
  DINO_CHECK(pred.size() == labels.size(), "probe accuracy: ", pred.size(), " predictions for ", labels.size(),
             " labels");
  DINO_CHECK(!labels.empty(), "probe accuracy: no valid rows");
  std::size_t correct = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) correct += pred[i] == labels[i];
  return static_cast<double>(correct) / static_cast<double>(labels.size());
}

// The kNN probe's accuracy on valid [M, E] with labels [M], from train [N, E] with labels [N].
template <class T, class B>
double knn_accuracy(Ctx<B>& ctx, const Tensor<T, B>& train, const std::vector<std::int64_t>& train_labels,
                    const Tensor<T, B>& valid, const std::vector<std::int64_t>& valid_labels, const KnnOptions& o) {
  DINO_CHECK(valid.rank() == 2, "kNN probe: the valid features must be [M, E], got ", valid.shape().str());
  detail::check_labels("kNN probe valid", valid_labels, valid.size(0), 0);
  return accuracy(knn_predict(ctx, train, train_labels, valid, o), valid_labels);
}

}  // namespace dino::probe
