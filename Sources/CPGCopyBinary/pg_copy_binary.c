#include "pg_copy_binary.h"

#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static inline void put16(uint8_t *o, uint16_t v) {
  o[0] = (uint8_t)(v >> 8);
  o[1] = (uint8_t)v;
}

static inline void put32(uint8_t *o, uint32_t v) {
  o[0] = (uint8_t)(v >> 24);
  o[1] = (uint8_t)(v >> 16);
  o[2] = (uint8_t)(v >> 8);
  o[3] = (uint8_t)v;
}

size_t ai_shell_pg_binary_room(size_t length, int ncols) {
  // a field of n text bytes (with its delimiter: n + 1) becomes at most 4 + max(n, 8) bytes, so
  // a line of `length` bytes at most 2 + length + 11 * ncols; `length` bounds every line in it
  return 2 + length + (size_t)ncols * 12;
}

// The first '\t', '\n', '\\' or '\r' in [p, end), or end: 16 bytes at a time where SSE2 is
// there (every x86-64 CPU), a byte at a time elsewhere.
static inline const uint8_t *next_special(const uint8_t *p, const uint8_t *end) {
#if defined(__SSE2__)
  const __m128i tab = _mm_set1_epi8('\t'), nl = _mm_set1_epi8('\n'), bs = _mm_set1_epi8('\\'),
                cr = _mm_set1_epi8('\r');
  while (end - p >= 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, tab), _mm_cmpeq_epi8(v, nl)),
                             _mm_or_si128(_mm_cmpeq_epi8(v, bs), _mm_cmpeq_epi8(v, cr)));
    int mask = _mm_movemask_epi8(m);
    if (mask) return p + __builtin_ctz((unsigned)mask);
    p += 16;
  }
#endif
  for (; p < end; p++) {
    if (*p == '\t' || *p == '\n' || *p == '\\' || *p == '\r') return p;
  }
  return end;
}

// An integer field "-?[0-9]+" at f within [-limit, limit - 1]; sets *fe to the byte after it
// (which the caller checks is the delimiter). Returns 0 for any other form.
static inline int parse_int(const uint8_t *f, const uint8_t *end, uint64_t limit, uint64_t *bits,
                            const uint8_t **fe) {
  int neg = f < end && *f == '-';
  const uint8_t *digits = f + neg, *q = digits;
  while (q < end && (unsigned)(*q - '0') <= 9) q++;
  if (q == digits || q - digits > 19) return 0;  // 19 digits fit in 64 bits; more are out of range
  uint64_t v = 0;
  for (const uint8_t *d = digits; d < q; d++) v = v * 10 + (unsigned)(*d - '0');
  if (neg ? v > limit : v >= limit) return 0;
  *bits = neg ? (uint64_t)0 - v : v;
  *fe = q;
  return 1;
}

// Unescapes the text field at f into o; sets *fe to its end (the '\t' or '\n' after it, or end)
// and returns its length, or -1 for a raw '\r' or an escape this does not convert.
static inline long unescape(const uint8_t *f, const uint8_t *end, uint8_t *o, const uint8_t **fe) {
  uint8_t *start = o;
  for (;;) {
    const uint8_t *s = next_special(f, end);
    memcpy(o, f, (size_t)(s - f));
    o += s - f;
    if (s == end || *s == '\t' || *s == '\n') {
      *fe = s;
      return (long)(o - start);
    }
    if (*s == '\r' || s + 1 == end) return -1;  // a raw '\r'; a backslash at the end
    switch (s[1]) {
    case 'b': *o++ = '\b'; break;
    case 'f': *o++ = '\f'; break;
    case 'n': *o++ = '\n'; break;
    case 'r': *o++ = '\r'; break;
    case 't': *o++ = '\t'; break;
    case 'v': *o++ = '\v'; break;
    case '\\': *o++ = '\\'; break;
    default: return -1;  // octal, hex, an escaped delimiter or newline, any other character
    }
    f = s + 2;
  }
}

// The length of the m bytes at s without their trailing spaces, 8 bytes at a time while it can.
// A char(n) value is stored padded with spaces to n characters whatever trailing spaces it was
// given (bpchar's input pads it, and clips spaces beyond n), so the server stores the same value
// without them, and does not count every padding space's character length (pg_mbstrlen_with_len:
// 16% of the server's CPU restoring pgbench_accounts, whose filler is char(84) of spaces). An
// escape never yields a space, and no client encoding has 0x20 inside a multibyte character.
static inline long without_trailing_spaces(const uint8_t *s, long m) {
  static const uint8_t spaces[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
  while (m >= 8 && memcmp(s + m - 8, spaces, 8) == 0) m -= 8;
  while (m > 0 && s[m - 1] == ' ') m--;
  return m;
}

// The line at p (within [p, end)) into `o`; sets *written and returns the byte after its '\n',
// or NULL when it does not convert (or has no '\n' before end).
static const uint8_t *convert_line(const uint8_t *p, const uint8_t *end, const uint8_t *kinds, int ncols,
                                   uint8_t *o, size_t *written) {
  uint8_t *start = o;
  put16(o, (uint16_t)ncols);
  o += 2;
  const uint8_t *f = p;
  for (int c = 0; c < ncols; c++) {
    const uint8_t *fe;
    uint64_t v;
    if (end - f >= 3 && f[0] == '\\' && f[1] == 'N' && (f[2] == '\t' || f[2] == '\n')) {
      put32(o, 0xFFFFFFFFu);
      o += 4;
      fe = f + 2;
    } else {
      switch (kinds[c]) {
      case AI_SHELL_PG_BOOL:
        if (f == end || (*f != 't' && *f != 'f')) return NULL;
        put32(o, 1);
        o[4] = *f == 't';
        o += 5;
        fe = f + 1;
        break;
      case AI_SHELL_PG_INT2:
      case AI_SHELL_PG_INT4:
      case AI_SHELL_PG_INT8: {
        // 2, 4 or 8 bytes, big-endian, within that width's signed range
        int width = 1 << (kinds[c] - AI_SHELL_PG_INT2 + 1);
        if (!parse_int(f, end, 1ull << (8 * width - 1), &v, &fe)) return NULL;
        put32(o, (uint32_t)width);
        if (width == 2) {
          put16(o + 4, (uint16_t)v);
        } else {
          if (width == 8) put32(o + 4, (uint32_t)(v >> 32));
          put32(o + width, (uint32_t)v);
        }
        o += 4 + width;
        break;
      }
      case AI_SHELL_PG_TEXT:
      case AI_SHELL_PG_BPCHAR: {
        long m = unescape(f, end, o + 4, &fe);
        if (m < 0) return NULL;
        if (kinds[c] == AI_SHELL_PG_BPCHAR) m = without_trailing_spaces(o + 4, m);
        put32(o, (uint32_t)m);
        o += 4 + m;
        break;
      }
      default:
        return NULL;
      }
    }
    // the field must end at its delimiter: '\t' before the next field, '\n' after the last
    if (fe == end || *fe != (c < ncols - 1 ? '\t' : '\n')) return NULL;
    f = fe + 1;
  }
  *written = (size_t)(o - start);
  return f;
}

int ai_shell_pg_copy_binary(const uint8_t *in, size_t len, const uint8_t *kinds, int ncols, uint8_t *out,
                            size_t cap, size_t *consumed, size_t *written) {
  const uint8_t *p = in, *end = in + len;
  size_t w = 0;
  int status = AI_SHELL_PG_DONE;
  while (p < end) {
    if (ncols < 1 || ncols > 0x7FFF) {
      status = AI_SHELL_PG_STOP;
      break;
    }
    // the rest of the input bounds the next line's length
    if (cap - w < ai_shell_pg_binary_room((size_t)(end - p), ncols)) {
      status = AI_SHELL_PG_FULL;
      break;
    }
    size_t n;
    const uint8_t *next = convert_line(p, end, kinds, ncols, out + w, &n);
    if (!next) {
      status = AI_SHELL_PG_STOP;
      break;
    }
    w += n;
    p = next;
  }
  *consumed = (size_t)(p - in);
  *written = w;
  return status;
}
