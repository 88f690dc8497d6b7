// The Keras GRU (reset_after) as persistent CUDA kernels, compiled at run
// time by NVRTC with -DUNITS=<H>. Header-free on purpose: the torch wheel
// ships NVRTC without the CUDA headers. See mod.rs for layouts, launch
// geometry and numerics.

#ifndef UNITS
#error "compile with -DUNITS=<units>"
#endif

typedef unsigned long long size_type;

constexpr int H = UNITS;
// Gate columns, and the threads of a block: thread j owns column j of the
// recurrent kernel (gate j / H, unit j % H).
constexpr int G = 3 * H;

// Independent partial sums per row in a dot product of length H: with few
// rows per block one chain of H dependent FMAs would set the step's
// latency, so it is cut into up to four chains (a divisor of H).
__host__ __device__ constexpr int chains_for(int rows) {
    return rows >= 4 ? 1
         : (4 / rows) % 4 == 0 && H % 4 == 0 ? 4
         : (4 / rows) >= 2 && H % 2 == 0 ? 2
         : 1;
}

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// For each of ROWS rows of `vectors` (shared memory), the dot product of its
// H entries from `offset` on with `u` (registers), plus `initial`: the
// matrix-vector product of a step. CHAINS partial sums, added in a fixed
// order.
template <int ROWS, int WIDTH>
__device__ __forceinline__ void dot_rows(const float (&vectors)[ROWS][WIDTH], int offset,
                                         const float (&u)[H], float initial, float (&out)[ROWS]) {
    constexpr int CHAINS = chains_for(ROWS);
    float acc[ROWS][CHAINS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r)
#pragma unroll
        for (int c = 0; c < CHAINS; ++c) acc[r][c] = 0.0f;
#pragma unroll
    for (int i = 0; i < H; i += CHAINS)
#pragma unroll
        for (int c = 0; c < CHAINS; ++c)
#pragma unroll
            for (int r = 0; r < ROWS; ++r)
                acc[r][c] = fmaf(vectors[r][offset + i + c], u[i + c], acc[r][c]);
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
        float sum = initial;
#pragma unroll
        for (int c = 0; c < CHAINS; ++c) sum += acc[r][c];
        out[r] = sum;
    }
}

// The (row, unit) pairs of thread j: pair j + p G for p < PAIRS, in the
// block's ROWS rows from row0. A pair past those rows or past the batch is
// not valid.
template <int ROWS, int PAIRS>
__device__ __forceinline__ void assign_pairs(int j, int row0, int batch, int (&row)[PAIRS],
                                             int (&unit)[PAIRS], bool (&valid)[PAIRS]) {
#pragma unroll
    for (int p = 0; p < PAIRS; ++p) {
        const int pair = j + p * G;
        row[p] = pair / H;
        unit[p] = pair % H;
        valid[p] = pair < ROWS * H && row0 + row[p] < batch;
    }
}

// Training: the input projections of all steps, [3, B, T, H], computed
// before the launch by one batched product (no bias).
struct ProjectedInputs {
    const float* __restrict__ projected;
    int batch;
    int steps;
    __device__ __forceinline__ float operator()(int gate, int b, int t, int k) const {
        return projected[((size_type)(gate * batch + b) * steps + t) * H + k];
    }
};

// Evaluation: without dropout the projection depends on the token alone, so
// row ids[b, t] of a table [N, 3H] (embeddings times kernel, no bias).
struct TableInputs {
    const float* __restrict__ table;
    const long long* __restrict__ ids;
    int steps;
    __device__ __forceinline__ float operator()(int gate, int b, int t, int k) const {
        return table[(size_type)ids[(size_type)b * steps + t] * G + gate * H + k];
    }
};

struct Tape {
    // [3, B, T, H]: the state each step's product saw, h_{t-1} times each
    // gate's recurrent mask (the recurrent kernel's gradient is their
    // product with the gate gradients).
    float* __restrict__ masked_states;
    // [B, T, 5, H]: z, r, hh, the recurrent h-gate term (h U_h + b'_h) and
    // h_{t-1}.
    float* __restrict__ gates;
};

constexpr int TAPE_FIELDS = 5;

// The forward recurrence of ROWS batch rows per block. Thread j computes
// column j of h U for every row (its column of U in registers, the masked
// states in shared memory); then the (row, unit) pairs, spread over the
// threads, apply the gates. Two barriers per step.
template <int ROWS, bool RECORD, class Inputs>
__device__ __forceinline__ void forward(
    const Inputs inputs, const float* __restrict__ recurrent_kernel,
    const float* __restrict__ bias, const float* __restrict__ recurrent_masks,
    int batch, int steps, float* __restrict__ h_last, Tape tape) {
    constexpr int PAIRS = (ROWS * H + G - 1) / G;
    __shared__ float masked[3][ROWS][H];
    __shared__ float products[ROWS][G];
    const int j = threadIdx.x;
    const int gate = j / H;
    const int row0 = blockIdx.x * ROWS;

    float u[H];
#pragma unroll
    for (int i = 0; i < H; ++i) u[i] = recurrent_kernel[i * G + j];
    const float recurrent_bias = bias[G + j];

    // The pairs this thread updates: state, masks and input biases. (The
    // pairs are assigned here as `assign_pairs` does, written out: with
    // the call, ptxas spilled 8 bytes in the 8-row table kernel at 50
    // units.)
    float h[PAIRS], mask[PAIRS][3], input_bias[PAIRS][3];
    bool valid[PAIRS];
    int pair_row[PAIRS], pair_unit[PAIRS];
#pragma unroll
    for (int p = 0; p < PAIRS; ++p) {
        const int pair = j + p * G;
        pair_row[p] = pair / H;
        pair_unit[p] = pair % H;
        const int b = row0 + pair_row[p];
        valid[p] = pair < ROWS * H && b < batch;
        h[p] = 0.0f;
#pragma unroll
        for (int g = 0; g < 3; ++g) {
            input_bias[p][g] = bias[g * H + pair_unit[p]];
            mask[p][g] = !valid[p] ? 0.0f
                       : recurrent_masks ? recurrent_masks[(size_type)(g * batch + b) * H + pair_unit[p]]
                       : 1.0f;
            if (pair_row[p] < ROWS) masked[g][pair_row[p]][pair_unit[p]] = 0.0f;
        }
    }
    __syncthreads();

    for (int t = 0; t < steps; ++t) {
        // The inputs do not depend on h: their loads overlap the product.
        float x[PAIRS][3];
#pragma unroll
        for (int p = 0; p < PAIRS; ++p)
#pragma unroll
            for (int g = 0; g < 3; ++g)
                x[p][g] = valid[p] ? inputs(g, row0 + pair_row[p], t, pair_unit[p]) : 0.0f;

        float sums[ROWS];
        dot_rows(masked[gate], 0, u, recurrent_bias, sums);
#pragma unroll
        for (int r = 0; r < ROWS; ++r) products[r][j] = sums[r];
        __syncthreads();

#pragma unroll
        for (int p = 0; p < PAIRS; ++p) {
            if (!valid[p]) continue;
            const int r = pair_row[p], k = pair_unit[p], b = row0 + r;
            const float z = sigmoid((x[p][0] + input_bias[p][0]) + products[r][k]);
            const float reset = sigmoid((x[p][1] + input_bias[p][1]) + products[r][H + k]);
            const float recurrent_h = products[r][2 * H + k];
            const float hh = tanhf((x[p][2] + input_bias[p][2]) + reset * recurrent_h);
            const float next = hh + z * (h[p] - hh);
            if (RECORD) {
                float* row = tape.gates + ((size_type)b * steps + t) * TAPE_FIELDS * H + k;
                row[0] = z;
                row[H] = reset;
                row[2 * H] = hh;
                row[3 * H] = recurrent_h;
                row[4 * H] = h[p];
#pragma unroll
                for (int g = 0; g < 3; ++g)
                    tape.masked_states[((size_type)(g * batch + b) * steps + t) * H + k] = masked[g][r][k];
            }
            h[p] = next;
#pragma unroll
            for (int g = 0; g < 3; ++g) masked[g][r][k] = next * mask[p][g];
        }
        __syncthreads();
    }
#pragma unroll
    for (int p = 0; p < PAIRS; ++p)
        if (valid[p]) h_last[(size_type)(row0 + pair_row[p]) * H + pair_unit[p]] = h[p];
}

// Backward through time of ROWS batch rows per block, from the gradient at
// the last state. The (row, unit) pairs turn the state gradient into the
// gate gradients; thread (gate, k) then forms row k of U_gate times them,
// masked, and the pairs sum the three gates in a fixed order.
template <int ROWS>
__device__ __forceinline__ void backward(
    const float* __restrict__ recurrent_kernel, const float* __restrict__ recurrent_masks,
    const float* __restrict__ tape_gates, const float* __restrict__ d_h_last,
    int batch, int steps, float* __restrict__ d_gates_input, float* __restrict__ d_gates_recurrent) {
    constexpr int PAIRS = (ROWS * H + G - 1) / G;
    __shared__ float d_recurrent[ROWS][G];
    __shared__ float d_states[ROWS][G];
    const int j = threadIdx.x;
    const int gate = j / H;
    const int unit = j % H;
    const int row0 = blockIdx.x * ROWS;

    float u[H];
#pragma unroll
    for (int i = 0; i < H; ++i) u[i] = recurrent_kernel[unit * G + gate * H + i];
    float mask[ROWS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
        const int b = row0 + r;
        mask[r] = b >= batch ? 0.0f
                : recurrent_masks ? recurrent_masks[(size_type)(gate * batch + b) * H + unit]
                : 1.0f;
    }

    float dh[PAIRS];
    bool valid[PAIRS];
    int pair_row[PAIRS], pair_unit[PAIRS];
    assign_pairs<ROWS>(j, row0, batch, pair_row, pair_unit, valid);
#pragma unroll
    for (int p = 0; p < PAIRS; ++p) {
        dh[p] = valid[p] ? d_h_last[(size_type)(row0 + pair_row[p]) * H + pair_unit[p]] : 0.0f;
        if (pair_row[p] < ROWS)
#pragma unroll
            for (int g = 0; g < 3; ++g) d_recurrent[pair_row[p]][g * H + pair_unit[p]] = 0.0f;
    }

    for (int t = steps - 1; t >= 0; --t) {
        float z[PAIRS];
#pragma unroll
        for (int p = 0; p < PAIRS; ++p) {
            z[p] = 0.0f;
            if (!valid[p]) continue;
            const int r = pair_row[p], k = pair_unit[p], b = row0 + r;
            const float* row = tape_gates + ((size_type)b * steps + t) * TAPE_FIELDS * H + k;
            z[p] = row[0];
            const float reset = row[H], hh = row[2 * H], recurrent_h = row[3 * H], previous = row[4 * H];
            const float d_z = dh[p] * (previous - hh) * (z[p] * (1.0f - z[p]));
            const float d_hh = dh[p] * (1.0f - z[p]) * (1.0f - hh * hh);
            const float d_reset = d_hh * recurrent_h * (reset * (1.0f - reset));
            const float d_recurrent_h = d_hh * reset;
            const size_type at = ((size_type)b * steps + t) * H + k;
            const size_type gate_stride = (size_type)batch * steps * H;
            d_gates_input[at] = d_z;
            d_gates_input[at + gate_stride] = d_reset;
            d_gates_input[at + 2 * gate_stride] = d_hh;
            d_gates_recurrent[at] = d_z;
            d_gates_recurrent[at + gate_stride] = d_reset;
            d_gates_recurrent[at + 2 * gate_stride] = d_recurrent_h;
            d_recurrent[r][k] = d_z;
            d_recurrent[r][H + k] = d_reset;
            d_recurrent[r][2 * H + k] = d_recurrent_h;
        }
        if (t == 0) break;  // h_0 is a constant: its gradient is not needed
        __syncthreads();

        float sums[ROWS];
        dot_rows(d_recurrent, gate * H, u, 0.0f, sums);
#pragma unroll
        for (int r = 0; r < ROWS; ++r) d_states[r][j] = sums[r] * mask[r];
        __syncthreads();

#pragma unroll
        for (int p = 0; p < PAIRS; ++p) {
            if (!valid[p]) continue;
            const int r = pair_row[p], k = pair_unit[p];
            dh[p] = dh[p] * z[p] + d_states[r][k] + d_states[r][H + k] + d_states[r][2 * H + k];
        }
    }
}

#define GRU_KERNELS(ROWS)                                                                       \
    extern "C" __global__ void __launch_bounds__(G) gru_forward_train_##ROWS(                  \
        const float* projected, const float* recurrent_kernel, const float* bias,               \
        const float* recurrent_masks, int batch, int steps, float* h_last,                      \
        float* masked_states, float* gates) {                                                   \
        forward<ROWS, true>(ProjectedInputs{projected, batch, steps}, recurrent_kernel, bias,   \
                            recurrent_masks, batch, steps, h_last, Tape{masked_states, gates}); \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(G) gru_forward_table_##ROWS(                  \
        const float* table, const long long* ids, const float* recurrent_kernel,                \
        const float* bias, int batch, int steps, float* h_last) {                               \
        forward<ROWS, false>(TableInputs{table, ids, steps}, recurrent_kernel, bias, nullptr,   \
                             batch, steps, h_last, Tape{nullptr, nullptr});                     \
    }                                                                                           \
    extern "C" __global__ void __launch_bounds__(G) gru_backward_##ROWS(                       \
        const float* recurrent_kernel, const float* recurrent_masks, const float* tape_gates,  \
        const float* d_h_last, int batch, int steps, float* d_gates_input,                      \
        float* d_gates_recurrent) {                                                             \
        backward<ROWS>(recurrent_kernel, recurrent_masks, tape_gates, d_h_last, batch, steps,  \
                       d_gates_input, d_gates_recurrent);                                       \
    }

GRU_KERNELS(1)
GRU_KERNELS(2)
GRU_KERNELS(4)
GRU_KERNELS(8)
