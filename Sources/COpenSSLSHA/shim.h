// OpenSSL's SHA-256 (libcrypto, Debian libssl-dev): its context is a public struct, so a hash
// state can be read at a block boundary and resumed later (the payload's SHA-256 checkpoints,
// docs/FORMAT.md). OpenSSL 3 marks these low-level calls deprecated in favour of EVP, which hides
// the state; they remain supported.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
