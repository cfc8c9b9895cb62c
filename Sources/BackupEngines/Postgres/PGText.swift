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
    let n = b.count
    var i = start
    while i < n {
      let c = b[i]
      switch c {
      case 0x27:  // '
        let escapes =
          i > start && (b[i - 1] == 0x45 || b[i - 1] == 0x65) && (i - 1 == start || !isIdentByte(b[i - 2]))
        i += 1
        while i < n {
          if escapes && b[i] == 0x5C {
            i += 2
            continue
          }
          if b[i] == 0x27 {
            if i + 1 < n && b[i + 1] == 0x27 {
              i += 2
              continue
            }
            break
          }
          i += 1
        }
        i += 1
      case 0x22:  // "
        i += 1
        while i < n && b[i] != 0x22 { i += 1 }
        i += 1
      case 0x2D where i + 1 < n && b[i + 1] == 0x2D:  // --
        while i < n && b[i] != 0x0A { i += 1 }
      case 0x2F where i + 1 < n && b[i + 1] == 0x2A:  // /*
        var depth = 1
        i += 2
        while i < n && depth > 0 {
          if b[i] == 0x2F && i + 1 < n && b[i + 1] == 0x2A {
            depth += 1
            i += 2
          } else if b[i] == 0x2A && i + 1 < n && b[i + 1] == 0x2F {
            depth -= 1
            i += 2
          } else {
            i += 1
          }
        }
      case 0x24 where i == start || !isIdentByte(b[i - 1]):  // $tag$
        var j = i + 1
        while j < n && isIdentByte(b[j]) && b[j] != 0x24 { j += 1 }
        let tagOK = j < n && b[j] == 0x24 && (j == i + 1 || !(b[i + 1] >= 0x30 && b[i + 1] <= 0x39))
        guard tagOK else {
          i += 1
          continue
        }
        let tag = Array(b[i...j])
        var k = j + 1
        var closed = false
        while k + tag.count <= n {
          if b[k] == 0x24 && b[k..<(k + tag.count)].elementsEqual(tag) {
            closed = true
            break
          }
          k += 1
        }
        if !closed { return nil }
        i = k + tag.count
      case 0x3B:
        return i
      default:
        i += 1
      }
    }
    return nil
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

  init?(_ line: String) {
    var s = line
    if s.hasPrefix("-- Name: ") {
      s.removeFirst("-- Name: ".count)
    } else if s.hasPrefix("-- Data for Name: ") {
      s.removeFirst("-- Data for Name: ".count)
    } else {
      return nil
    }
    s = s.trimmingCharacters(in: .newlines)
    guard let t = s.range(of: "; Type: ", options: .backwards) else { return nil }
    tag = String(s[..<t.lowerBound])
    let after = s[t.upperBound...]
    let fields = after.components(separatedBy: "; ")
    type = fields[0]
    schema = nil
    for f in fields.dropFirst() where f.hasPrefix("Schema: ") {
      let v = String(f.dropFirst("Schema: ".count))
      schema = v == "-" ? nil : v
    }
  }
}
