// The fused training step's BatchNorm: BN + ReLU, and BN + the shortcut's addition + ReLU (the
// residual block's tail), forward and backward, each one autograd operation. Unfused, libtorch
// passes over the activations once per op: BN's statistics, BN's normalisation, the ReLU, the
// addition and the second ReLU forward, and as many backward. Here the forward reads the input
// twice (statistics, then normalise-add-activate in one pass) and writes once; the backward makes
// one reduction pass (which also writes the shortcut's gradient) and one pass writing the input's
// gradient. bf16 activations stay bf16 between the passes; statistics and parameters are fp32.
//
// Layout: channels-last (NHWC strides), where a row of C channels is contiguous: every loop runs
// over a row's channels, which the compiler vectorises. The kernels are compiled for AVX-512,
// AVX2+FMA and baseline x86-64, and the CPU picks at load time (GCC's target_clones), never
// -march=native: the machine that runs is not the one that built.
//
// Threads: libtorch's own intra-op pool (at::parallel_for), so no second pool. The rows are cut
// into blocks of a fixed size, each block's sums are kept apart and added in block order, so the
// result does not depend on the number of threads, or on which thread took which block.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "reslab_guarded.h"

using reslab::guarded;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

namespace {

// Rows per block: each block's channel sums are accumulated in fp32 from a shift (the first
// row's values), then the blocks' sums in fp64, which keeps the variance exact to fp32's
// precision where the mean is large beside the spread.
constexpr int64_t kBlockRows = 64;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define RESLAB_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define RESLAB_CLONES
#endif
#define RESLAB_INLINE inline __attribute__((always_inline))

// Eight channels at a time where the count allows (every CIFAR and ImageNet width), in GCC's
// vector types: one AVX2 register (AVX-512 runs them at AVX2's width: GCC splits wider generic
// vectors into scalar code for some operations), two SSE ones in the baseline clone. A chunk's
// sums stay in registers over a block's rows, which fit the L1 cache. Other channel counts take
// the same code one channel at a time.
typedef float vf __attribute__((vector_size(32)));
typedef uint32_t vu __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));
typedef uint16_t vh __attribute__((vector_size(16)));
typedef uint16_t vh2 __attribute__((vector_size(32)));

template <typename V>
constexpr int64_t kLanes = 1;
template <>
constexpr int64_t kLanes<vf> = 8;

// bf16 is fp32's upper half: widening is a shift; narrowing rounds to nearest even, as
// c10::BFloat16 does (a NaN stays a quiet NaN).
RESLAB_INLINE float get(const float* p, int64_t i, float) { return p[i]; }
RESLAB_INLINE float get(const uint16_t* p, int64_t i, float) {
  uint32_t bits = static_cast<uint32_t>(p[i]) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}
RESLAB_INLINE vf get(const float* p, int64_t i, vf) {
  vf v;
  std::memcpy(&v, p + i, sizeof v);
  return v;
}
RESLAB_INLINE vf get(const uint16_t* p, int64_t i, vf) {
  vh h;
  std::memcpy(&h, p + i, sizeof h);
  return (vf)(__builtin_convertvector(h, vu) << 16);
}
RESLAB_INLINE void put(float* p, int64_t i, float v) { p[i] = v; }
RESLAB_INLINE void put(uint16_t* p, int64_t i, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  p[i] = (bits & 0x7FFFFFFFu) > 0x7F800000u ? static_cast<uint16_t>(0x7FC0) : static_cast<uint16_t>(rounded);
}
RESLAB_INLINE void put(float* p, int64_t i, vf v) { std::memcpy(p + i, &v, sizeof v); }
// The bf16 nearest to each lane, in fp32's layout (low half zero).
RESLAB_INLINE vu round_to_bf16(vf v) {
  vu bits = (vu)v;
  vu rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) & 0xFFFF0000u;
  // (Signed: AVX2 compares signed integers only, and the magnitudes are non-negative.)
  vu nan = (vu)((vi)(bits & 0x7FFFFFFFu) > 0x7F800000);
  return (rounded & ~nan) | (0x7FC00000u & nan);
}
RESLAB_INLINE void put(uint16_t* p, int64_t i, vf v) {
  // The upper halves of the 32-bit words (little-endian: the odd 16-bit ones), by a shuffle:
  // AVX2 has no narrowing move.
  vh2 halves = (vh2)round_to_bf16(v);
  vh h = __builtin_shufflevector(halves, halves, 1, 3, 5, 7, 9, 11, 13, 15);
  std::memcpy(p + i, &h, sizeof h);
}

// `value` where `sign` is above zero, else 0: a mask, not a branch. A float above zero is an int
// above zero in its bits (a NaN with a clear sign bit passes, as in ReLU); the integer compare
// keeps GCC from splitting a wide float compare into lanes.
RESLAB_INLINE float where_positive(float sign, float value) { return sign > 0.f ? value : 0.f; }
RESLAB_INLINE vf where_positive(vf sign, vf value) { return (vf)((vi)value & ((vi)sign > 0)); }

template <typename V>
RESLAB_INLINE V relu(V v) {
  return where_positive(v, v);
}

// `v` rounded to T and back: BN's output as the unfused step stores it before the addition.
template <typename T>
RESLAB_INLINE float rounded_like(float v) {
  if (sizeof(T) == sizeof(float)) return v;
  uint16_t bits;
  put(&bits, 0, v);
  return get(static_cast<const uint16_t*>(&bits), 0, float{});
}
template <typename T>
RESLAB_INLINE vf rounded_like(vf v) {
  if (sizeof(T) == sizeof(float)) return v;
  return (vf)round_to_bf16(v);
}

// Per channel over `rows` rows: sum of (x - shift) into s1, of its square into s2.
template <typename T, typename V>
RESLAB_INLINE void stats_rows(const T* __restrict x, int64_t rows, int64_t channels, const float* __restrict shift,
                              float* __restrict s1, float* __restrict s2) {
  for (int64_t c0 = 0; c0 < channels; c0 += kLanes<V>) {
    V a1 = {}, a2 = {};
    const V k = get(shift, c0, V{});
    for (int64_t r = 0; r < rows; ++r) {
      V d = get(x, r * channels + c0, V{}) - k;
      a1 += d;
      a2 += d * d;
    }
    put(s1, c0, a1);
    put(s2, c0, a2);
  }
}

// y = relu(x * scale + offset [+ identity]); BN's output is rounded to T before the addition, as
// the unfused step rounds it, so that in bf16 the two differ by no more than the statistics' last
// bits (a sum rounded once instead of twice would send more values across the ReLU's zero).
template <typename T, typename V, bool kAdd>
RESLAB_INLINE void forward_rows(const T* __restrict x, const T* __restrict identity, T* __restrict y, int64_t rows,
                                int64_t channels, const float* __restrict scale, const float* __restrict offset) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < channels; c += kLanes<V>) {
      const int64_t at = r * channels + c;
      V v = get(x, at, V{}) * get(scale, c, V{}) + get(offset, c, V{});
      if (kAdd) v = rounded_like<T>(v) + get(identity, at, V{});
      put(y, at, relu(v));
    }
  }
}

// The ReLU's gradient g = dy where y > 0; per channel the sums of g and of g * (x - mean) into sg
// and sgx; g written to g_out for the shortcut.
template <typename T, typename V, bool kAdd>
RESLAB_INLINE void backward_sums_rows(const T* __restrict dy, const T* __restrict y, const T* __restrict x,
                                      T* __restrict g_out, int64_t rows, int64_t channels,
                                      const float* __restrict mean, float* __restrict sg, float* __restrict sgx) {
  for (int64_t c0 = 0; c0 < channels; c0 += kLanes<V>) {
    V a1 = {}, a2 = {};
    const V m = get(mean, c0, V{});
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t at = r * channels + c0;
      V g = where_positive(get(y, at, V{}), get(dy, at, V{}));
      if (kAdd) put(g_out, at, g);
      a1 += g;
      a2 += g * (get(x, at, V{}) - m);
    }
    put(sg, c0, a1);
    put(sgx, c0, a2);
  }
}

// dx = a * g + b * (x - mean) + d, BN's input gradient with the per-channel constants folded; g
// read back from `g_in` where the shortcut's gradient holds it, else from dy and y.
template <typename T, typename V, bool kAdd>
RESLAB_INLINE void backward_input_rows(const T* __restrict dy, const T* __restrict y, const T* __restrict g_in,
                                       const T* __restrict x, T* __restrict dx, int64_t rows, int64_t channels,
                                       const float* __restrict mean, const float* __restrict a,
                                       const float* __restrict b, const float* __restrict d) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < channels; c += kLanes<V>) {
      const int64_t at = r * channels + c;
      V g = kAdd ? get(g_in, at, V{}) : where_positive(get(y, at, V{}), get(dy, at, V{}));
      V centred = get(x, at, V{}) - get(mean, c, V{});
      put(dx, at, get(a, c, V{}) * g + get(b, c, V{}) * centred + get(d, c, V{}));
    }
  }
}

// One entry point per kernel and element type, each compiled per instruction set; eight
// channels at a time where the count allows.
#define RESLAB_BY_WIDTH(CALL)       \
  if (channels % kLanes<vf> == 0) { \
    CALL(vf);                 \
  } else {                    \
    CALL(float);              \
  }
#define RESLAB_KERNELS(T, SUFFIX)                                                                                    \
  RESLAB_CLONES void stats_##SUFFIX(const T* x, int64_t rows, int64_t channels, const float* shift, float* s1,      \
                                    float* s2) {                                                                     \
    using Elem = T;                                                                                                  \
    RESLAB_BY_WIDTH(RESLAB_STATS)                                                                                    \
  }                                                                                                                  \
  RESLAB_CLONES void forward_##SUFFIX(const T* x, const T* identity, T* y, int64_t rows, int64_t channels,           \
                                      const float* scale, const float* offset) {                                     \
    using Elem = T;                                                                                                  \
    if (identity != nullptr) {                                                                                       \
      RESLAB_BY_WIDTH(RESLAB_FORWARD_ADD)                                                                            \
    } else {                                                                                                         \
      RESLAB_BY_WIDTH(RESLAB_FORWARD)                                                                                \
    }                                                                                                                \
  }                                                                                                                  \
  RESLAB_CLONES void backward_sums_##SUFFIX(const T* dy, const T* y, const T* x, T* g_out, int64_t rows,            \
                                            int64_t channels, const float* mean, float* sg, float* sgx) {            \
    using Elem = T;                                                                                                  \
    if (g_out != nullptr) {                                                                                          \
      RESLAB_BY_WIDTH(RESLAB_SUMS_ADD)                                                                               \
    } else {                                                                                                         \
      RESLAB_BY_WIDTH(RESLAB_SUMS)                                                                                   \
    }                                                                                                                \
  }                                                                                                                  \
  RESLAB_CLONES void backward_input_##SUFFIX(const T* dy, const T* y, const T* g_in, const T* x, T* dx,             \
                                             int64_t rows, int64_t channels, const float* mean, const float* a,      \
                                             const float* b, const float* d) {                                       \
    using Elem = T;                                                                                                  \
    if (g_in != nullptr) {                                                                                           \
      RESLAB_BY_WIDTH(RESLAB_INPUT_ADD)                                                                              \
    } else {                                                                                                         \
      RESLAB_BY_WIDTH(RESLAB_INPUT)                                                                                  \
    }                                                                                                                \
  }
#define RESLAB_STATS(V) stats_rows<Elem, V>(x, rows, channels, shift, s1, s2)
#define RESLAB_FORWARD_ADD(V) forward_rows<Elem, V, true>(x, identity, y, rows, channels, scale, offset)
#define RESLAB_FORWARD(V) forward_rows<Elem, V, false>(x, nullptr, y, rows, channels, scale, offset)
#define RESLAB_SUMS_ADD(V) backward_sums_rows<Elem, V, true>(dy, y, x, g_out, rows, channels, mean, sg, sgx)
#define RESLAB_SUMS(V) backward_sums_rows<Elem, V, false>(dy, y, x, nullptr, rows, channels, mean, sg, sgx)
#define RESLAB_INPUT_ADD(V) backward_input_rows<Elem, V, true>(nullptr, nullptr, g_in, x, dx, rows, channels, mean, a, b, d)
#define RESLAB_INPUT(V) backward_input_rows<Elem, V, false>(dy, y, nullptr, x, dx, rows, channels, mean, a, b, d)

RESLAB_KERNELS(float, f32)
RESLAB_KERNELS(uint16_t, bf16)

// A tensor's elements as the kernels take them: bf16's as their bits (uint16_t).
template <typename T>
const T* data(const at::Tensor& t) {
  return t.defined() ? reinterpret_cast<const T*>(t.const_data_ptr()) : nullptr;
}
template <typename T>
T* mutable_data(at::Tensor& t) {
  return t.defined() ? reinterpret_cast<T*>(t.mutable_data_ptr()) : nullptr;
}

// A (N, C, H, W) tensor in channels-last layout, as rows of C.
at::Tensor rows_of(const at::Tensor& t) { return t.contiguous(at::MemoryFormat::ChannelsLast); }

int64_t block_count(int64_t rows) { return (rows + kBlockRows - 1) / kBlockRows; }

// Runs `body(block, first_row, rows)` over every block, on libtorch's threads.
template <typename F>
void for_blocks(int64_t rows, F body) {
  at::parallel_for(0, block_count(rows), 1, [&](int64_t begin, int64_t end) {
    for (int64_t block = begin; block < end; ++block) {
      int64_t first = block * kBlockRows;
      body(block, first, std::min(kBlockRows, rows - first));
    }
  });
}

// The blocks' per-channel sums (2 x C floats each), added in block order in fp64.
void add_blocks(const std::vector<float>& partial, int64_t blocks, int64_t channels, std::vector<double>& first,
                std::vector<double>& second) {
  first.assign(channels, 0.0);
  second.assign(channels, 0.0);
  for (int64_t block = 0; block < blocks; ++block) {
    const float* sums = partial.data() + block * 2 * channels;
    for (int64_t c = 0; c < channels; ++c) {
      first[c] += sums[c];
      second[c] += sums[channels + c];
    }
  }
}

void check_input(const at::Tensor& x, const at::Tensor& identity, const at::Tensor& weight) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 4, "fused BN: a 4-d CPU tensor expected");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16, "fused BN: fp32 or bf16 expected");
  TORCH_CHECK(!identity.defined() || (identity.sizes() == x.sizes() && identity.scalar_type() == x.scalar_type()),
              "fused BN: the shortcut's shape and type must be the input's");
  TORCH_CHECK(weight.scalar_type() == at::kFloat && weight.numel() == x.size(1), "fused BN: fp32 weight per channel");
  TORCH_CHECK(x.numel() / x.size(1) > 1, "fused BN: more than one value per channel expected in training");
}

// relu(bn(x) [+ identity]) with batch statistics, forward and backward, for the two autograd
// functions below (autograd takes no undefined input, so the one without a shortcut has none).
struct BnReluImpl {
  // The forward pass; running_mean and running_var updated as PyTorch does (momentum, the
  // unbiased variance).
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x_in, const at::Tensor& identity_in,
                            const at::Tensor& weight, const at::Tensor& bias, at::Tensor running_mean,
                            at::Tensor running_var, double momentum, double eps) {
    check_input(x_in, identity_in, weight);
    const bool bf16 = x_in.scalar_type() == at::kBFloat16;
    at::Tensor x = rows_of(x_in);
    at::Tensor identity = identity_in.defined() ? rows_of(identity_in) : at::Tensor();
    const int64_t channels = x.size(1), rows = x.numel() / channels, blocks = block_count(rows);

    // Statistics: shifted sums per block, then in fp64.
    std::vector<float> shift(channels), partial(blocks * 2 * channels);
    {
      at::Tensor first_row = x.permute({0, 2, 3, 1}).reshape({rows, channels}).select(0, 0).to(at::kFloat);
      std::memcpy(shift.data(), first_row.const_data_ptr<float>(), channels * sizeof(float));
    }
    for_blocks(rows, [&](int64_t block, int64_t first, int64_t n) {
      float* sums = partial.data() + block * 2 * channels;
      if (bf16)
        stats_bf16(data<uint16_t>(x) + first * channels, n, channels, shift.data(), sums, sums + channels);
      else
        stats_f32(data<float>(x) + first * channels, n, channels, shift.data(), sums, sums + channels);
    });
    std::vector<double> s1, s2;
    add_blocks(partial, blocks, channels, s1, s2);

    at::Tensor mean = at::empty({channels}, weight.options());
    at::Tensor invstd = at::empty({channels}, weight.options());
    std::vector<float> scale(channels), offset(channels);
    const float* w = weight.const_data_ptr<float>();
    const float* b = bias.const_data_ptr<float>();
    {
      at::NoGradGuard no_grad;
      float* m = mean.mutable_data_ptr<float>();
      float* is = invstd.mutable_data_ptr<float>();
      float* rm = running_mean.defined() ? running_mean.mutable_data_ptr<float>() : nullptr;
      float* rv = running_var.defined() ? running_var.mutable_data_ptr<float>() : nullptr;
      for (int64_t c = 0; c < channels; ++c) {
        double centred = s1[c] / rows;
        double var_sum = std::max(0.0, s2[c] - s1[c] * centred);  // sum of squared deviations
        m[c] = static_cast<float>(shift[c] + centred);
        is[c] = static_cast<float>(1.0 / std::sqrt(var_sum / rows + eps));
        scale[c] = w[c] * is[c];
        offset[c] = b[c] - m[c] * scale[c];
        if (rm != nullptr) rm[c] = static_cast<float>(momentum * m[c] + (1 - momentum) * rm[c]);
        if (rv != nullptr) rv[c] = static_cast<float>(momentum * (var_sum / (rows - 1)) + (1 - momentum) * rv[c]);
      }
    }

    at::Tensor y = at::empty_like(x, at::MemoryFormat::ChannelsLast);
    for_blocks(rows, [&](int64_t, int64_t first, int64_t n) {
      int64_t at = first * channels;
      if (bf16)
        forward_bf16(data<uint16_t>(x) + at, identity.defined() ? data<uint16_t>(identity) + at : nullptr,
                     mutable_data<uint16_t>(y) + at, n, channels, scale.data(), offset.data());
      else
        forward_f32(data<float>(x) + at, identity.defined() ? data<float>(identity) + at : nullptr,
                    mutable_data<float>(y) + at, n, channels, scale.data(), offset.data());
    });
    ctx->save_for_backward({x, y, weight, mean, invstd});
    ctx->saved_data["identity"] = identity_in.defined();
    return y;
  }

  // The gradients of x, the shortcut (undefined without one), the weight and the bias.
  static variable_list backward(AutogradContext* ctx, const variable_list& grads) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &y = saved[1], &weight = saved[2], &mean = saved[3], &invstd = saved[4];
    const bool has_identity = ctx->saved_data["identity"].toBool();
    const bool bf16 = x.scalar_type() == at::kBFloat16;
    at::Tensor dy = rows_of(grads[0].to(x.scalar_type()));
    const int64_t channels = x.size(1), rows = x.numel() / channels, blocks = block_count(rows);
    const float* m = mean.const_data_ptr<float>();

    at::Tensor g = has_identity ? at::empty_like(x, at::MemoryFormat::ChannelsLast) : at::Tensor();
    std::vector<float> partial(blocks * 2 * channels);
    for_blocks(rows, [&](int64_t block, int64_t first, int64_t n) {
      int64_t at = first * channels;
      float* sums = partial.data() + block * 2 * channels;
      if (bf16)
        backward_sums_bf16(data<uint16_t>(dy) + at, data<uint16_t>(y) + at, data<uint16_t>(x) + at,
                           g.defined() ? mutable_data<uint16_t>(g) + at : nullptr, n, channels, m, sums,
                           sums + channels);
      else
        backward_sums_f32(data<float>(dy) + at, data<float>(y) + at, data<float>(x) + at,
                          g.defined() ? mutable_data<float>(g) + at : nullptr, n, channels, m, sums, sums + channels);
    });
    std::vector<double> sg, sgx;
    add_blocks(partial, blocks, channels, sg, sgx);

    // dx = w * invstd * (g - mean(g) - (x - mean) * invstd^2 * mean(g * (x - mean))).
    at::Tensor grad_weight = at::empty({channels}, weight.options());
    at::Tensor grad_bias = at::empty({channels}, weight.options());
    std::vector<float> a(channels), b(channels), d(channels);
    const float* w = weight.const_data_ptr<float>();
    const float* is = invstd.const_data_ptr<float>();
    float* gw = grad_weight.mutable_data_ptr<float>();
    float* gb = grad_bias.mutable_data_ptr<float>();
    for (int64_t c = 0; c < channels; ++c) {
      gb[c] = static_cast<float>(sg[c]);
      gw[c] = static_cast<float>(sgx[c] * is[c]);
      double scale = static_cast<double>(w[c]) * is[c];
      a[c] = static_cast<float>(scale);
      b[c] = static_cast<float>(-scale * is[c] * is[c] * sgx[c] / rows);
      d[c] = static_cast<float>(-scale * sg[c] / rows);
    }
    at::Tensor dx = at::empty_like(x, at::MemoryFormat::ChannelsLast);
    for_blocks(rows, [&](int64_t, int64_t first, int64_t n) {
      int64_t at = first * channels;
      if (bf16)
        backward_input_bf16(data<uint16_t>(dy) + at, data<uint16_t>(y) + at,
                            g.defined() ? data<uint16_t>(g) + at : nullptr, data<uint16_t>(x) + at,
                            mutable_data<uint16_t>(dx) + at, n, channels, m, a.data(), b.data(), d.data());
      else
        backward_input_f32(data<float>(dy) + at, data<float>(y) + at, g.defined() ? data<float>(g) + at : nullptr,
                           data<float>(x) + at, mutable_data<float>(dx) + at, n, channels, m, a.data(), b.data(),
                           d.data());
    });
    return {dx, g, grad_weight, grad_bias};
  }
};

struct BnRelu : public torch::autograd::Function<BnRelu> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                               const at::Tensor& bias, const at::Tensor& running_mean, const at::Tensor& running_var,
                               double momentum, double eps) {
    RECORD_FUNCTION("reslab::bn_relu", std::vector<c10::IValue>());
    return {BnReluImpl::forward(ctx, x, at::Tensor(), weight, bias, running_mean, running_var, momentum, eps)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    RECORD_FUNCTION("reslab::bn_relu_backward", std::vector<c10::IValue>());
    auto g = BnReluImpl::backward(ctx, grads);
    return {g[0], g[2], g[3], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct BnAddRelu : public torch::autograd::Function<BnAddRelu> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& identity,
                               const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& running_mean,
                               const at::Tensor& running_var, double momentum, double eps) {
    RECORD_FUNCTION("reslab::bn_add_relu", std::vector<c10::IValue>());
    return {BnReluImpl::forward(ctx, x, identity, weight, bias, running_mean, running_var, momentum, eps)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    RECORD_FUNCTION("reslab::bn_add_relu_backward", std::vector<c10::IValue>());
    auto g = BnReluImpl::backward(ctx, grads);
    return {g[0], g[1], g[2], g[3], at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

extern "C" {

// relu(batch_norm(x) [+ identity]) in training mode as one autograd operation (see above);
// `identity` may be null. Running statistics are updated in place.
char* reslab_bn_relu(at::Tensor* x, at::Tensor* identity, at::Tensor* weight, at::Tensor* bias,
                     at::Tensor* running_mean, at::Tensor* running_var, double momentum, double eps,
                     at::Tensor** out) {
  return guarded([&] {
    auto result = identity != nullptr
                      ? BnAddRelu::apply(*x, *identity, *weight, *bias, *running_mean, *running_var, momentum, eps)
                      : BnRelu::apply(*x, *weight, *bias, *running_mean, *running_var, momentum, eps);
    *out = new at::Tensor(result[0]);
  });
}

}  // extern "C"
