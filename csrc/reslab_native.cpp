// libtorch operations that tch does not expose, compiled against the libtorch that torch-sys
// links (see build.rs). Each function takes tch's tensors (at::Tensor pointers), catches every
// C++ exception and returns its message (to be freed with reslab_free_error) or null.

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/grad_mode.h>
#include <ATen/core/stack.h>
#include <ATen/record_function.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <memory>

#include "reslab_guarded.h"

using reslab::guarded;

extern "C" {

// Makes every parameter a view into one flat buffer and gives it a gradient that is a view into
// another, each keeping its shape and strides (channels-last included), so the optimizer updates
// all parameters with a few ops on the flat buffers instead of several ops per parameter.
// Autograd accumulates into an existing gradient in place (AccumulateGrad with grad mode off),
// so backward fills the flat gradient buffer. The flat tensors are returned as new at::Tensor*.
char* reslab_flatten_parameters(at::Tensor** params, int64_t count, at::Tensor** flat_params,
                                at::Tensor** flat_grads) {
  return guarded([&] {
    at::NoGradGuard no_grad;
    TORCH_CHECK(count > 0, "no parameters to flatten");
    int64_t total = 0;
    for (int64_t i = 0; i < count; ++i) {
      const at::Tensor& param = *params[i];
      TORCH_CHECK(param.is_non_overlapping_and_dense(), "parameter ", i, " is not dense");
      TORCH_CHECK(param.options().dtype() == params[0]->options().dtype() && param.device() == params[0]->device(),
                  "parameters of different dtypes or devices");
      total += param.numel();
    }
    at::Tensor values = at::empty({total}, params[0]->options());
    at::Tensor grads = at::zeros({total}, params[0]->options());
    int64_t offset = 0;
    for (int64_t i = 0; i < count; ++i) {
      at::Tensor& param = *params[i];
      at::Tensor view = values.as_strided(param.sizes(), param.strides(), offset);
      view.copy_(param);
      param.set_data(view);
      param.mutable_grad() = grads.as_strided(param.sizes(), param.strides(), offset);
      offset += param.numel();
    }
    *flat_params = new at::Tensor(values);
    *flat_grads = new at::Tensor(grads);
  });
}

// torch.optim.SGD's update, op for op as PyTorch's single-tensor implementation (the one it uses
// on CPU) does it, dampening 0, no Nesterov, on one tensor (the flat buffers above):
//   g = grad.add(param, alpha=weight_decay); buf.mul_(momentum).add_(g); param.add_(buf, alpha=-lr)
// `add` with alpha is one fused multiply-add per element and every op is elementwise, so each
// element's result is bit for bit what PyTorch computes for it, however the tensors are split.
// The momentum buffer starts at zero, so the first step gives buf = g exactly, as PyTorch's clone.
char* reslab_sgd_update(at::Tensor* param, at::Tensor* grad, at::Tensor* buffer, double lr, double momentum,
                        double weight_decay) {
  return guarded([&] {
    RECORD_FUNCTION("reslab::sgd_update", std::vector<c10::IValue>());
    at::NoGradGuard no_grad;
    at::Tensor step = weight_decay != 0.0 ? grad->add(*param, weight_decay) : *grad;
    if (momentum != 0.0) {
      buffer->mul_(momentum).add_(step);
      step = *buffer;
    }
    param->add_(step, -lr);
  });
}

// Mixed precision through libtorch's own autocast (tch reaches only CUDA's): while enabled on a
// device type (0: CPU, 1: CUDA), the ops of autocast's lower-precision list (convolutions,
// matmuls, linear) run in bf16 on that device; weights, BN statistics and the loss stay fp32.
// Entering returns whether autocast was already on and its dtype, to be given back on leaving
// (autocast state is per thread: leave on the thread that entered); leaving the
// outermost region clears the cache of cast weights, as torch.autocast's __exit__ does.
static at::DeviceType autocast_device(int device) { return device == 1 ? at::kCUDA : at::kCPU; }

char* reslab_autocast_enter(int device, int* was_enabled, int* previous_dtype) {
  return guarded([&] {
    at::DeviceType type = autocast_device(device);
    *was_enabled = at::autocast::is_autocast_enabled(type) ? 1 : 0;
    *previous_dtype = static_cast<int>(at::autocast::get_autocast_dtype(type));
    at::autocast::set_autocast_dtype(type, at::kBFloat16);
    at::autocast::set_autocast_enabled(type, true);
    at::autocast::increment_nesting();
  });
}

char* reslab_autocast_exit(int device, int was_enabled, int previous_dtype) {
  return guarded([&] {
    at::DeviceType type = autocast_device(device);
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(type, was_enabled != 0);
    at::autocast::set_autocast_dtype(type, static_cast<at::ScalarType>(previous_dtype));
  });
}

// oneDNN's fused convolution for inference, as libtorch registers it for Inductor
// (mkldnn::_convolution_pointwise): y = conv(x, w) + b, then + other if given, then ReLU if asked,
// in one pass over the output instead of up to three. Dense fp32 CPU tensors; no autograd.
char* reslab_conv_fused(at::Tensor* x, at::Tensor* w, at::Tensor* b, int64_t stride, int64_t padding,
                        at::Tensor* other, int relu, at::Tensor** out) {
  return guarded([&] {
    std::vector<int64_t> paddings{padding, padding}, strides{stride, stride}, dilations{1, 1};
    torch::jit::Stack stack;
    if (other == nullptr) {
      static const c10::OperatorHandle op =
          c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_convolution_pointwise", "");
      stack = {*x, *w, *b, paddings, strides, dilations, int64_t{1}, std::string(relu ? "relu" : "none"),
               c10::List<std::optional<at::Scalar>>(), c10::IValue()};
      op.callBoxed(&stack);
    } else {
      static const c10::OperatorHandle op =
          c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_convolution_pointwise", "binary");
      c10::IValue unary = relu ? c10::IValue(std::string("relu")) : c10::IValue();
      stack = {*x, *other, *w, *b, paddings, strides, dilations, int64_t{1}, std::string("add"), c10::IValue(),
               unary, c10::List<std::optional<at::Scalar>>(), c10::IValue()};
      op.callBoxed(&stack);
    }
    *out = new at::Tensor(stack.back().toTensor());
  });
}

// libtorch's profiler (the legacy one, on this thread and the work autograd runs for it): from
// start to stop every op is recorded with its start and duration, and stop writes them to `path`
// as a Chrome trace (JSON).
static std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;

char* reslab_profile_start(const char* path) {
  return guarded([&] {
    TORCH_CHECK(!profile, "a profile is already being recorded");
    profile = std::make_unique<torch::autograd::profiler::RecordProfile>(std::string(path));
  });
}

char* reslab_profile_stop() {
  return guarded([&] { profile.reset(); });
}

void reslab_free_error(char* message) { std::free(message); }

}  // extern "C"
