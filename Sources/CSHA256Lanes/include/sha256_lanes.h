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

/// How many lanes the best kernel this CPU runs has: 16 (AVX-512), 8 (AVX2) or 0 (neither, or not
/// x86-64: hash one stream at a time instead).
int ai_shell_sha256_lanes(void);

/// Runs `nblocks` 64-byte blocks of each lane through SHA-256's compression function.
/// `state` holds `lanes` states of 8 words (H0..H7) one after the other; `data[i]` points at
/// lane i's `nblocks * 64` bytes. `lanes` must be 16 or 8 and supported (ai_shell_sha256_lanes).
void ai_shell_sha256_blocks(int lanes, uint32_t *state, const uint8_t *const *data, size_t nblocks);

#endif
