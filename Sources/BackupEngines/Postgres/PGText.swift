import BackupModel
import Foundation

/// Lexing of the SQL that pg_dump writes (and psql reads): statements end at a `;` outside
/// quotes ('…' with '' doubled, E'…' with backslash escapes, "…", $tag$…$tag$) and comments
/// (`--` to the end of the line, nested `/* */`). Lines starting with `\` at a statement
/// boundary are psql meta-commands (pg_dump writes `\restrict` / `\unrestrict`).
enum PGText {
  @inline(__always) static func isIdentByte(_ c: UInt8) -> Bool {
    (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39) || c == 0x5F
      || c == 0x24 || c >= 0x80
  }

  /// The index of the `;` ending the statement that starts at `start`, or nil if it does not end.
  static func statementEnd(_ b: [UInt8], from start: Int) -> Int? {
    var scanner = StatementScanner()
    return b.withUnsafeBufferPointer { scanner.scan($0, from: start, to: $0.count) }
  }

  /// Finds the `;` that ends a statement in text fed to it piece by piece (a line at a time
  /// when streaming, or a whole script at once): its state carries over between calls, so a
  /// quote, dollar quote or comment may span any number of pieces.
  struct StatementScanner {
    enum Mode: Equatable {
      case normal
      /// Inside '…' (E'…' with backslash escapes); `closing`: the byte before was a `'` that
      /// closes the string unless another `'` follows.
      case single(escapes: Bool, closing: Bool, escaped: Bool)
      case double
      case lineComment
      case block(depth: Int)
      /// After a `$` that may open a dollar quote; the tag so far (without `$`).
      case tagStart([UInt8])
      /// Inside a dollar quote closed by `tag` (with both `$`); `matched` bytes of it seen.
      case dollar(tag: [UInt8], matched: Int)
    }
    var mode = Mode.normal
    /// The two bytes before the current one (0: none), whatever the mode.
    private var prev1: UInt8 = 0
    private var prev2: UInt8 = 0
    /// Set when the current byte ended a two-byte token (`/*`, `*/`): it starts no other one.
    private var swallowed = false

    /// Scans `b[from..<to]`; returns the index of the statement's `;`, or nil if it continues.
    mutating func scan(_ b: UnsafeBufferPointer<UInt8>, from: Int, to: Int) -> Int? {
      var i = from
      while i < to {
        let c = b[i]
        if step(c) { return i }
        prev2 = prev1
        prev1 = swallowed ? 0 : c
        swallowed = false
        i += 1
      }
      return nil
    }

    /// Takes one byte; true if it is the statement's `;`.
    @inline(__always) private mutating func step(_ c: UInt8) -> Bool {
      switch mode {
      case .normal:
        switch c {
        case 0x27:  // '
          let escapes = (prev1 == 0x45 || prev1 == 0x65) && !PGText.isIdentByte(prev2)
          mode = .single(escapes: escapes, closing: false, escaped: false)
        case 0x22: mode = .double
        case 0x2D where prev1 == 0x2D: mode = .lineComment
        case 0x2A where prev1 == 0x2F:
          mode = .block(depth: 1)
          swallowed = true
        case 0x24 where !PGText.isIdentByte(prev1): mode = .tagStart([])
        case 0x3B: return true
        default: break
        }
      case .single(let escapes, let closing, let escaped):
        if closing {
          if c == 0x27 {
            mode = .single(escapes: escapes, closing: false, escaped: false)
          } else {
            mode = .normal
            return step(c)
          }
        } else if escaped {
          mode = .single(escapes: escapes, closing: false, escaped: false)
        } else if escapes && c == 0x5C {
          mode = .single(escapes: escapes, closing: false, escaped: true)
        } else if c == 0x27 {
          mode = .single(escapes: escapes, closing: true, escaped: false)
        }
      case .double:
        if c == 0x22 { mode = .normal }
      case .lineComment:
        if c == 0x0A { mode = .normal }
      case .block(let depth):
        if c == 0x2A && prev1 == 0x2F {
          mode = .block(depth: depth + 1)
          swallowed = true
        } else if c == 0x2F && prev1 == 0x2A {
          mode = depth == 1 ? .normal : .block(depth: depth - 1)
          swallowed = true
        }
      case .tagStart(let tag):
        if c == 0x24 {
          mode = .dollar(tag: [0x24] + tag + [0x24], matched: 0)
        } else if PGText.isIdentByte(c) && !(tag.isEmpty && c >= 0x30 && c <= 0x39) {
          mode = .tagStart(tag + [c])
        } else {
          mode = .normal
          return step(c)
        }
      case .dollar(let tag, let matched):
        if c == tag[matched] {
          mode = matched + 1 == tag.count ? .normal : .dollar(tag: tag, matched: matched + 1)
        } else {
          mode = .dollar(tag: tag, matched: c == 0x24 ? 1 : 0)
        }
      }
      return false
    }
  }

  static func lineEnd(_ b: [UInt8], from i: Int) -> Int {
    var j = i
    while j < b.count && b[j] != 0x0A { j += 1 }
    return j < b.count ? j + 1 : j
  }

  static func isBlank(_ b: ArraySlice<UInt8>) -> Bool {
    b.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
  }

  enum Piece {
    /// A comment, blank or meta-command line (with its line end).
    case line(Range<Int>)
    /// A statement, from its first byte to the end of the line holding its `;`.
    case statement(Range<Int>)
  }

  /// Splits SQL text into top-level lines and statements.
  static func pieces(_ b: [UInt8]) throws -> [Piece] {
    var out: [Piece] = []
    var i = 0
    while i < b.count {
      let e = lineEnd(b, from: i)
      var first = i
      while first < e && (b[first] == 0x20 || b[first] == 0x09) { first += 1 }
      let rest = b[first..<e]
      if isBlank(rest) || rest.starts(with: [0x2D, 0x2D]) || b[first] == 0x5C {
        out.append(.line(i..<e))
        i = e
        continue
      }
      guard let semi = statementEnd(b, from: first) else {
        throw BackupError(
          .corrupt, "backup part ends inside an SQL statement", hint: "the backup is truncated")
      }
      let end = lineEnd(b, from: semi)
      out.append(.statement(i..<end))
      i = end
    }
    return out
  }
}

/// One pg_dump TOC entry header: `-- Name: tag; Type: TYPE; Schema: s; Owner: o`.
struct TOCHeader {
  var tag: String
  var type: String
  var schema: String?

  /// Parsed from the line's bytes (a dump has one header per object, so this stays off
  /// Foundation's string calls): the tag runs to the last "; Type: ", the fields after it are
  /// separated by "; ".
  init?(_ line: ArraySlice<UInt8>) {
    var b = line
    for prefix in TOCHeader.prefixes where b.starts(with: prefix) {
      b = b.dropFirst(prefix.count)
      break
    }
    guard b.startIndex != line.startIndex else { return nil }
    while let last = b.last, last == 0x0A || last == 0x0D { b = b.dropLast() }
    guard let t = b.ranges(of: TOCHeader.typeSeparator).last else { return nil }
    tag = String(decoding: b[..<t.lowerBound], as: UTF8.self)
    let fields = b[t.upperBound...].split(
      separator: TOCHeader.fieldSeparator, omittingEmptySubsequences: false)
    type = String(decoding: fields[0], as: UTF8.self)
    schema = nil
    for f in fields.dropFirst() where f.starts(with: TOCHeader.schemaPrefix) {
      let v = String(decoding: f.dropFirst(TOCHeader.schemaPrefix.count), as: UTF8.self)
      schema = v == "-" ? nil : v
    }
  }

  static let prefixes = [Array("-- Name: ".utf8), Array("-- Data for Name: ".utf8)]
  static let typeSeparator = Array("; Type: ".utf8)
  static let fieldSeparator = Array("; ".utf8)
  static let schemaPrefix = Array("Schema: ".utf8)
}
