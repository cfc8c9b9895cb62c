// SHA-256 (FIPS 180-4) compression over 8 or 16 independent streams, written once with the
// compiler's vector extensions and compiled for AVX2 and for AVX-512 (rotates and three-input
// logic come from the compiler's instruction selection). See include/sha256_lanes.h.
#include "sha256_lanes.h"

#include <string.h>

#if defined(__x86_64__) && defined(__clang__)

static const uint32_t K[64] = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

// One kernel per lane count: V is a vector of LANES 32-bit words, word i of every lane's block.
#define SHA256_KERNEL(NAME, V, LANES, TARGET)                                                       \
  typedef uint32_t V __attribute__((vector_size(LANES * 4)));                                      \
  __attribute__((target(TARGET))) static inline V NAME##_rotr(V x, int n) {                        \
    return (x >> n) | (x << (32 - n));                                                              \
  }                                                                                                 \
  __attribute__((target(TARGET))) static void NAME(                                                \
    uint32_t *state, const uint8_t *const *data, size_t nblocks) {                                 \
    V s[8];                                                                                         \
    for (int i = 0; i < 8; i++)                                                                     \
      for (int l = 0; l < LANES; l++) s[i][l] = state[l * 8 + i];                                   \
    for (size_t b = 0; b < nblocks; b++) {                                                          \
      V w[16];                                                                                      \
      for (int j = 0; j < 16; j++)                                                                  \
        for (int l = 0; l < LANES; l++) {                                                           \
          uint32_t x;                                                                               \
          memcpy(&x, data[l] + b * 64 + j * 4, 4);                                                  \
          w[j][l] = __builtin_bswap32(x);                                                           \
        }                                                                                           \
      V a = s[0], bb = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];            \
      _Pragma("clang loop unroll(full)") for (int r = 0; r < 64; r++) {                            \
        V wr;                                                                                       \
        if (r < 16) {                                                                               \
          wr = w[r];                                                                                \
        } else {                                                                                    \
          V w15 = w[(r - 15) & 15], w2 = w[(r - 2) & 15];                                           \
          V s0 = NAME##_rotr(w15, 7) ^ NAME##_rotr(w15, 18) ^ (w15 >> 3);                           \
          V s1 = NAME##_rotr(w2, 17) ^ NAME##_rotr(w2, 19) ^ (w2 >> 10);                            \
          wr = w[r & 15] = w[r & 15] + s0 + w[(r - 7) & 15] + s1;                                   \
        }                                                                                           \
        V S1 = NAME##_rotr(e, 6) ^ NAME##_rotr(e, 11) ^ NAME##_rotr(e, 25);                         \
        V ch = (e & f) ^ (~e & g);                                                                  \
        V t1 = h + S1 + ch + K[r] + wr;                                                             \
        V S0 = NAME##_rotr(a, 2) ^ NAME##_rotr(a, 13) ^ NAME##_rotr(a, 22);                         \
        V maj = (a & bb) ^ (a & c) ^ (bb & c);                                                      \
        h = g;                                                                                      \
        g = f;                                                                                      \
        f = e;                                                                                      \
        e = d + t1;                                                                                 \
        d = c;                                                                                      \
        c = bb;                                                                                     \
        bb = a;                                                                                     \
        a = t1 + S0 + maj;                                                                          \
      }                                                                                             \
      s[0] += a;                                                                                    \
      s[1] += bb;                                                                                   \
      s[2] += c;                                                                                    \
      s[3] += d;                                                                                    \
      s[4] += e;                                                                                    \
      s[5] += f;                                                                                    \
      s[6] += g;                                                                                    \
      s[7] += h;                                                                                    \
    }                                                                                               \
    for (int i = 0; i < 8; i++)                                                                     \
      for (int l = 0; l < LANES; l++) state[l * 8 + i] = s[i][l];                                   \
  }

SHA256_KERNEL(sha256_x16, v16u32, 16, "avx512f,avx512vl,avx512bw")
SHA256_KERNEL(sha256_x8vl, v8u32vl, 8, "avx512f,avx512vl")
SHA256_KERNEL(sha256_x8, v8u32, 8, "avx2")

int ai_shell_sha256_kernels(void) {
  __builtin_cpu_init();
  int kernels = 0;
  if (__builtin_cpu_supports("avx2")) kernels |= AI_SHELL_SHA256_X8_AVX2;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) {
    kernels |= AI_SHELL_SHA256_X8_AVX512;
    if (__builtin_cpu_supports("avx512bw")) kernels |= AI_SHELL_SHA256_X16_AVX512;
  }
  return kernels;
}

void ai_shell_sha256_blocks(int kernel, uint32_t *state, const uint8_t *const *data, size_t nblocks) {
  if (kernel == AI_SHELL_SHA256_X16_AVX512) sha256_x16(state, data, nblocks);
  else if (kernel == AI_SHELL_SHA256_X8_AVX512) sha256_x8vl(state, data, nblocks);
  else if (kernel == AI_SHELL_SHA256_X8_AVX2) sha256_x8(state, data, nblocks);
}

#else

int ai_shell_sha256_kernels(void) { return 0; }

void ai_shell_sha256_blocks(int kernel, uint32_t *state, const uint8_t *const *data, size_t nblocks) {
  (void)kernel;
  (void)state;
  (void)data;
  (void)nblocks;
}

#endif
