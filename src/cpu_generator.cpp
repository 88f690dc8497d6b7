// libtorch's default CPU generator, drawn from without a tensor: the
// numbers `torch.rand` gives. See `cpu_generator.rs` for why and how it is
// checked. This runs the very code of libtorch's CPU `uniform_` kernel
// (`uniform_kernel` in ATen/native/cpu/DistributionTemplates.h: under the
// generator's lock, one `random()` of its MT19937 engine per element,
// through `at::transformation::uniform_real`), on a copy of the engine
// that it then stores back.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/TransformationHelper.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>

// `at::mt19937_engine::operator()`'s tempering of one word of the state.
static inline uint32_t temper(uint32_t y) {
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680;
  y ^= (y << 15) & 0xefc60000;
  y ^= (y >> 18);
  return y;
}

static inline float uniform(uint32_t bits) {
  return at::transformation::uniform_real<float>(bits, 0.0f, 1.0f);
}

// Fills `out[0..n)` as `torch.rand(n)` would; 0 on success, 1 if libtorch
// threw (no exception may cross into Rust). The engine draws one number
// itself whenever its state is due to be regenerated (its own code does
// that); the numbers up to the next regeneration are the state's words
// tempered in order, which this takes in one loop that the compiler
// vectorises. A training step's masks at batch 32 (18,432 numbers) took
// 48-50 us with one engine call a number, 16-25 us so (2-core Zen 5).
extern "C" int gru_imdb_cpu_uniform(float* __restrict out, int64_t n) {
  try {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    auto* cpu = at::check_generator<at::CPUGeneratorImpl>(generator);
    at::mt19937 engine = cpu->engine();
    int64_t i = 0;
    while (i < n) {
      out[i++] = uniform(engine());
      // The engine gives state words next_, next_ + 1, ... while left_
      // stays above 1.
      at::mt19937_data_pod data = engine.data();
      const int64_t run = std::min<int64_t>(data.left_ - 1, n - i);
      const uint32_t* words = data.state_.data() + data.next_;
      for (int64_t k = 0; k < run; k++) {
        out[i + k] = uniform(temper(words[k]));
      }
      data.next_ += static_cast<uint32_t>(run);
      data.left_ -= static_cast<int>(run);
      engine.set_data(data);
      i += run;
    }
    cpu->set_engine(engine);
    return 0;
  } catch (const std::exception&) {
    return 1;
  }
}
