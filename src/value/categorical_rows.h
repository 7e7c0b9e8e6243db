// Host loops over a categorical head's rows of m logits (CPU float32): the softmax and what is
// built on it, for the DQN update, its bootstrap target and acting, where a dozen LibTorch
// operators per call cost more than their arithmetic at batch 32. Every clone reads a row in
// 16-float vectors and sums them in one order, so the results are the same bits on every x86-64
// CPU, whatever its vector width and LibTorch's kernel set (whose softmax rounds differently under
// AVX2 and AVX-512). No LibTorch here.
#pragma once

#include <cstdint>

namespace stoch::value {

// out[r] = sum_j softmax(row r)_j * support[j] for the rows [rows, m] of `logits`: each row's
// expectation over the support.
void expectation_rows(const float* logits, int64_t rows, int64_t m, const float* support,
                      float* out);

// out [rows, m] = the softmax of each row of `logits`.
void softmax_rows(const float* logits, int64_t rows, int64_t m, float* out);

// Cross-entropy of target distributions against picked rows of `logits`: row r is
// logits + index[r] * m, its target target + r * m. Writes each row's loss -sum_j target[r, j]
// log softmax(row r)_j into loss [rows] and its gradient with respect to the row,
// softmax * sum_j target[r, j] - target[r], into grad [rows, m].
void cross_entropy_rows(const float* logits, const int64_t* index, int64_t rows, int64_t m,
                        const float* target, float* loss, float* grad);

}  // namespace stoch::value
