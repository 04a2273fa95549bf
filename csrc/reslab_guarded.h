// How the shims hand C++ exceptions to Rust: `guarded` runs a body and returns null, or the
// exception's message malloc'ed for Rust (freed with reslab_free_error, in reslab_native.cpp).

#pragma once

#include <cstdlib>
#include <cstring>
#include <exception>

namespace reslab {
inline char* copy_message(const char* message) {
  char* copy = static_cast<char*>(std::malloc(std::strlen(message) + 1));
  if (copy != nullptr) std::strcpy(copy, message);
  return copy;
}

// Runs `body`, turning any C++ exception into a message for Rust (null: no error).
template <typename F>
char* guarded(F&& body) {
  try {
    body();
    return nullptr;
  } catch (const std::exception& e) {
    return copy_message(e.what());
  } catch (...) {
    return copy_message("unknown C++ exception");
  }
}
}  // namespace reslab
