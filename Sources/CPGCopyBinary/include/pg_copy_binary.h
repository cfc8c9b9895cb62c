// COPY's text format to its binary format, for the rows a PostgreSQL restore sends
// (docs/ARCHITECTURE.md, "Data flow of `backup restore`"). The server parses binary rows with
// less work than text (no line and field scanning, no escapes, no integer parsing: about a
// quarter less CPU per row of pgbench_accounts), and restores are bound by the server's CPU.
// libpq sends COPY data as given and has no converter, so this is ours. It converts only what it
// can convert exactly: the server's own text output of bool, int2, int4, int8, text, varchar and
// bpchar, and stops at the first line in any other form, which the caller then sends in the text
// format.
#ifndef AI_SHELL_PG_COPY_BINARY_H
#define AI_SHELL_PG_COPY_BINARY_H
#include <stddef.h>
#include <stdint.h>

/// A column's conversion: its type's binary send format.
enum {
  AI_SHELL_PG_BOOL = 1,
  AI_SHELL_PG_INT2 = 2,  // the integers consecutive: the converter derives the width from them
  AI_SHELL_PG_INT4 = 3,
  AI_SHELL_PG_INT8 = 4,
  AI_SHELL_PG_TEXT = 5,  // text, varchar, unbounded bpchar: the bytes after unescaping
  AI_SHELL_PG_BPCHAR = 6,  // char(n): the bytes after unescaping, without their trailing spaces
};

/// What `ai_shell_pg_copy_binary` stopped at.
enum {
  AI_SHELL_PG_DONE = 0,  // every line converted
  AI_SHELL_PG_FULL = 1,  // less room left in `out` than `ai_shell_pg_binary_room` of the input left
  AI_SHELL_PG_STOP = 2,  // the line at `*consumed` has a form this does not convert
};

/// The room in `out` that converting the next line of `length` bytes of input needs at most
/// (`length` bounds the line's length: the converter checks this room against all the input left,
/// so it never needs to find the line's end first).
size_t ai_shell_pg_binary_room(size_t length, int ncols);

/// Converts whole lines of COPY text format ('\t' between fields, '\n' after each line) from
/// `in`, each with `ncols` fields whose conversions are `kinds`, into binary-format tuples at
/// `out` (`cap` bytes). Sets `*consumed` to the bytes of `in` converted (whole lines) and
/// `*written` to the bytes put at `out`. Stops (AI_SHELL_PG_STOP) at a line that is not exactly
/// the server's output form: a field count other than `ncols`, a raw '\r', an escape other than
/// \b \f \n \r \t \v \\, an integer with a sign other than '-' or out of its type's range, a
/// boolean other than t or f, a last line without '\n'. "\N" is NULL in every column.
int ai_shell_pg_copy_binary(const uint8_t *in, size_t len, const uint8_t *kinds, int ncols, uint8_t *out,
                            size_t cap, size_t *consumed, size_t *written);

#endif
