// libtorch operations that tch does not expose, compiled against the libtorch that torch-sys
// links (see build.rs). Each function takes tch's tensors (at::Tensor pointers), catches every
// C++ exception and returns its message (to be freed with reslab_free_error) or null.

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdlib>
#include <cstring>
#include <exception>

namespace {
char* copy_message(const char* message) {
  char* copy = static_cast<char*>(std::malloc(std::strlen(message) + 1));
  if (copy != nullptr) std::strcpy(copy, message);
  return copy;
}
}  // namespace

extern "C" {

// torch.optim.SGD's update for every parameter with a gradient, op for op as PyTorch's
// single-tensor implementation (the one it uses on CPU) does it, dampening 0, no Nesterov:
//   g = grad.add(param, alpha=weight_decay); buf.mul_(momentum).add_(g); param.add_(buf, alpha=-lr)
// `add` with alpha is one fused multiply-add per element, so the result is bit for bit PyTorch's.
// The momentum buffers start at zero, so the first step gives buf = g exactly, as PyTorch's clone.
char* reslab_sgd_step(at::Tensor** params, at::Tensor** buffers, int64_t count, double lr, double momentum,
                      double weight_decay) {
  try {
    at::NoGradGuard no_grad;
    for (int64_t i = 0; i < count; ++i) {
      at::Tensor& param = *params[i];
      const at::Tensor& grad = param.grad();
      if (!grad.defined()) continue;
      at::Tensor step = weight_decay != 0.0 ? grad.add(param, weight_decay) : grad;
      if (momentum != 0.0) {
        at::Tensor& buffer = *buffers[i];
        buffer.mul_(momentum).add_(step);
        step = buffer;
      }
      param.add_(step, -lr);
    }
    return nullptr;
  } catch (const std::exception& e) {
    return copy_message(e.what());
  } catch (...) {
    return copy_message("unknown C++ exception");
  }
}

void reslab_free_error(char* message) { std::free(message); }

}  // extern "C"
