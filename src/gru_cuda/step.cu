// The rest of a training step on the GPU, each part one launch where
// libtorch would take many: Keras's Adam over all parameters, the binary
// head (loss, running totals and gradients of Dense(1) + sigmoid
// cross-entropy) and the embedding gradient. Compiled at run time by
// NVRTC; header-free. See mod.rs for why each exists.

typedef unsigned long long size_type;

// ---------------------------------------------------------------- Adam --
// Block row y updates parameter y. The _rn intrinsics forbid contracting a
// multiply and an add into one FMA, so each element gets the CPU update's
// exact f32 operations (optim/dense.rs).

#define MAX_PARAMETERS 8

struct Slot {
    float* parameter;
    float* m;
    float* v;
    const float* gradient;
    size_type len;
};

struct AdamStep {
    Slot slots[MAX_PARAMETERS];
    float alpha;
    float one_minus_beta_1;
    float one_minus_beta_2;
    float epsilon;
};

extern "C" __global__ void adam_step(const AdamStep step) {
    const Slot slot = step.slots[blockIdx.y];
    const size_type stride = (size_type)gridDim.x * blockDim.x;
    for (size_type i = (size_type)blockIdx.x * blockDim.x + threadIdx.x; i < slot.len; i += stride) {
        const float g = slot.gradient[i];
        float m = slot.m[i], v = slot.v[i];
        m = __fadd_rn(m, __fmul_rn(__fsub_rn(g, m), step.one_minus_beta_1));
        v = __fadd_rn(v, __fmul_rn(__fsub_rn(__fmul_rn(g, g), v), step.one_minus_beta_2));
        slot.m[i] = m;
        slot.v[i] = v;
        const float update = __fdiv_rn(__fmul_rn(step.alpha, m), __fadd_rn(__fsqrt_rn(v), step.epsilon));
        slot.parameter[i] = __fsub_rn(slot.parameter[i], update);
    }
}

// --------------------------------------------------------- binary head --
// One block of HEAD_THREADS. Per row i of the batch, with x the logit and
// y the label: loss_i = max(x, 0) - x y + log1p(exp(-|x|)) (binary
// cross-entropy on the logit, as libtorch computes it), dx_i = (sigmoid(x)
// - y) / B; a hit when (x > 0) == y. Sums are tree reductions in a fixed
// order: deterministic.

#define HEAD_THREADS 256
#define HEAD_MAX_BATCH 4096

__device__ float block_sum(float value, float* scratch) {
    scratch[threadIdx.x] = value;
    __syncthreads();
    for (int half = HEAD_THREADS / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) scratch[threadIdx.x] += scratch[threadIdx.x + half];
        __syncthreads();
    }
    const float sum = scratch[0];
    __syncthreads();
    return sum;
}

extern "C" __global__ void __launch_bounds__(HEAD_THREADS) binary_head(
    const float* __restrict__ logits, const float* __restrict__ labels,
    const float* __restrict__ h_last, const float* __restrict__ dense_kernel,
    int batch, int units, double* loss_sum, double* hits,
    float* __restrict__ d_h_last, float* __restrict__ d_dense_kernel,
    float* __restrict__ d_dense_bias) {
    __shared__ float d_logits[HEAD_MAX_BATCH];
    __shared__ float scratch[HEAD_THREADS];
    float loss = 0.0f, hit = 0.0f, d_bias = 0.0f;
    for (int i = threadIdx.x; i < batch; i += HEAD_THREADS) {
        const float x = logits[i], y = labels[i];
        loss += fmaxf(x, 0.0f) - x * y + log1pf(expf(-fabsf(x)));
        hit += (x > 0.0f ? 1.0f : 0.0f) == y ? 1.0f : 0.0f;
        const float d = (1.0f / (1.0f + expf(-x)) - y) / (float)batch;
        d_logits[i] = d;
        d_bias += d;
    }
    loss = block_sum(loss, scratch);
    hit = block_sum(hit, scratch);
    d_bias = block_sum(d_bias, scratch);
    if (threadIdx.x == 0) {
        // As Totals::add: the batch mean as the optimiser saw it, times n.
        *loss_sum += (double)(loss / (float)batch) * batch;
        *hits += (double)hit;
        *d_dense_bias = d_bias;
    }
    for (int j = threadIdx.x; j < units; j += HEAD_THREADS) {
        float sum = 0.0f;
        for (int i = 0; i < batch; ++i) sum = fmaf(d_logits[i], h_last[(size_type)i * units + j], sum);
        d_dense_kernel[j] = sum;
    }
    for (int k = threadIdx.x; k < batch * units; k += HEAD_THREADS)
        d_h_last[k] = d_logits[k / units] * dense_kernel[k % units];
}

// --------------------------------------------------- embedding gradient --
// Each position's input gradient summed into its token's row. Float atomics
// would sum in a varying order; these add 64-bit fixed-point integers
// (2^-EMBEDDING_FRACTION_BITS resolution), whose sum is the same in any
// order, and the gather turns the sums back into floats and clears them for
// the next step.

#define EMBEDDING_FRACTION_BITS 36

extern "C" __global__ void embedding_scatter(
    const long long* __restrict__ ids, const float* __restrict__ d_inputs,
    long long positions, int dim, unsigned long long* sums) {
    const float scale = (float)(1ull << EMBEDDING_FRACTION_BITS);
    const size_type n = (size_type)positions * dim;
    const size_type stride = (size_type)gridDim.x * blockDim.x;
    for (size_type i = (size_type)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const long long fixed = llrint((double)d_inputs[i] * (double)scale);
        atomicAdd(&sums[(size_type)ids[i / dim] * dim + i % dim], (unsigned long long)fixed);
    }
}

extern "C" __global__ void embedding_gather(
    unsigned long long* __restrict__ sums, float* __restrict__ gradient, long long n) {
    const double scale = (double)(1ull << EMBEDDING_FRACTION_BITS);
    const size_type stride = (size_type)gridDim.x * blockDim.x;
    for (size_type i = (size_type)blockIdx.x * blockDim.x + threadIdx.x; i < (size_type)n; i += stride) {
        gradient[i] = (float)((double)(long long)sums[i] / scale);
        sums[i] = 0;
    }
}
