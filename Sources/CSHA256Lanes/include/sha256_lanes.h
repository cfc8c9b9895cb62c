// SHA-256 of several independent streams at once ("multi-buffer"), one stream per SIMD lane.
// A backup's SHA-256 checkpoints (docs/FORMAT.md, "Part checksums") cut its one hash into
// stretches that can be checked independently; OpenSSL hashes one stream at a time (about 390
// MB/s on a core without SHA extensions), these kernels hash 8 or 16 stretches side by side. No
// packaged library offers a multi-buffer SHA-256 (Intel's isa-l_crypto is not in Debian; OpenSSL
// keeps its own for TLS records), so this is ours, checked against OpenSSL by the tests.
#ifndef AI_SHELL_SHA256_LANES_H
#define AI_SHELL_SHA256_LANES_H
#include <stddef.h>
#include <stdint.h>

/// The kernels: 8 lanes with AVX2, 8 lanes with AVX-512VL (rotates and three-input logic in one
/// instruction each: ~1.6x the AVX2 kernel), 16 lanes with AVX-512.
enum {
  AI_SHELL_SHA256_X8_AVX2 = 1,
  AI_SHELL_SHA256_X8_AVX512 = 2,
  AI_SHELL_SHA256_X16_AVX512 = 4,
};

/// The kernels this CPU runs, as a mask of the values above (0 when none, or not x86-64: hash one
/// stream at a time instead).
int ai_shell_sha256_kernels(void);

/// Runs `nblocks` 64-byte blocks of each lane through SHA-256's compression function with
/// `kernel` (one of the values above, supported by this CPU). `state` holds one state of 8 words
/// (H0..H7) per lane (8 or 16), one after the other; `data[i]` points at lane i's
/// `nblocks * 64` bytes.
void ai_shell_sha256_blocks(int kernel, uint32_t *state, const uint8_t *const *data, size_t nblocks);

#endif
