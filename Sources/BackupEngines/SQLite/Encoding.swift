import BackupModel

/// Byte-level helpers shared by the dump encoders and the restore parsers.
enum Bytes {
  static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)
  static let base64Alphabet: [UInt8] = Array(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
  static let base64Decode: [UInt8] = {
    var t = [UInt8](repeating: 0xFF, count: 256)
    for (i, c) in base64Alphabet.enumerated() { t[Int(c)] = UInt8(i) }
    return t
  }()

  static func appendDecimal(_ value: Int64, to out: inout [UInt8]) {
    if value == 0 {
      out.append(UInt8(ascii: "0"))
      return
    }
    var magnitude = value.magnitude
    if value < 0 { out.append(UInt8(ascii: "-")) }
    var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)
    withUnsafeMutableBytes(of: &tmp) { raw in
      var i = 24
      while magnitude > 0 {
        i -= 1
        raw[i] = UInt8(ascii: "0") &+ UInt8(magnitude % 10)
        magnitude /= 10
      }
      out.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[i..<24]))
    }
  }

  /// The two hex digits of every byte value, in memory order (the first digit at the lower
  /// address), so a byte becomes one 16-bit store.
  static let hexPairs: [UInt16] = (0..<256).map { b in
    let pair = [hexDigits[b >> 4], hexDigits[b & 0xF]]
    return pair.withUnsafeBytes { $0.loadUnaligned(as: UInt16.self) }
  }

  /// Appends the bytes as uppercase hex. One table lookup and one store per byte into space
  /// grown once: blobs are most of a large SQL dump, and per-digit appends (each with its own
  /// capacity check) were a fifth of such a create's CPU.
  static func appendHex(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
    guard !bytes.isEmpty else { return }
    let start = out.count
    out.append(contentsOf: repeatElement(0, count: bytes.count * 2))
    hexPairs.withUnsafeBufferPointer { pairs in
      out.withUnsafeMutableBytes { raw in
        let dst = raw.baseAddress! + start
        for (i, b) in bytes.enumerated() {
          dst.storeBytes(of: pairs[Int(b)], toByteOffset: 2 * i, as: UInt16.self)
        }
      }
    }
  }

  static func appendBase64(_ bytes: UnsafeRawBufferPointer, to out: inout [UInt8]) {
    let a = base64Alphabet
    var i = 0
    let n = bytes.count
    while i + 3 <= n {
      let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
      out.append(a[Int(v >> 18 & 63)])
      out.append(a[Int(v >> 12 & 63)])
      out.append(a[Int(v >> 6 & 63)])
      out.append(a[Int(v & 63)])
      i += 3
    }
    if n - i == 1 {
      let v = UInt32(bytes[i]) << 16
      out.append(a[Int(v >> 18 & 63)])
      out.append(a[Int(v >> 12 & 63)])
      out.append(UInt8(ascii: "="))
      out.append(UInt8(ascii: "="))
    } else if n - i == 2 {
      let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
      out.append(a[Int(v >> 18 & 63)])
      out.append(a[Int(v >> 12 & 63)])
      out.append(a[Int(v >> 6 & 63)])
      out.append(UInt8(ascii: "="))
    }
  }

  static func decodeBase64(_ bytes: ArraySlice<UInt8>) throws -> [UInt8] {
    let t = base64Decode
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count / 4 * 3)
    var acc: UInt32 = 0
    var bits = 0
    var padding = 0
    for c in bytes {
      if c == UInt8(ascii: "=") {
        padding += 1
        continue
      }
      let v = t[Int(c)]
      guard v != 0xFF, padding == 0 else { throw BackupError(.corrupt, "bad base64 value in backup") }
      acc = acc << 6 | UInt32(v)
      bits += 6
      if bits >= 8 {
        bits -= 8
        out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
      }
    }
    guard (bytes.count - padding + padding) % 4 == 0 || padding == 0 else {
      throw BackupError(.corrupt, "bad base64 padding in backup")
    }
    return out
  }

  static func decodeHex(_ bytes: ArraySlice<UInt8>) throws -> [UInt8] {
    guard bytes.count % 2 == 0 else { throw BackupError(.corrupt, "bad hex value in backup") }
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count / 2)
    var i = bytes.startIndex
    while i < bytes.endIndex {
      guard let h = nibble(bytes[i]), let l = nibble(bytes[i + 1]) else {
        throw BackupError(.corrupt, "bad hex value in backup")
      }
      out.append(h << 4 | l)
      i += 2
    }
    return out
  }

  @inline(__always) static func nibble(_ c: UInt8) -> UInt8? {
    switch c {
    case 0x30...0x39: return c - 0x30
    case 0x41...0x46: return c - 0x41 + 10
    case 0x61...0x66: return c - 0x61 + 10
    default: return nil
    }
  }

  /// Strict UTF-8 validation (no overlongs, surrogates or code points above U+10FFFF).
  static func isValidUTF8(_ b: UnsafeRawBufferPointer) -> Bool {
    var i = 0
    let n = b.count
    while i < n {
      let c = b[i]
      if c < 0x80 {
        i += 1
        continue
      }
      var need = 0
      var minV: UInt32 = 0
      var v: UInt32
      if c & 0xE0 == 0xC0 {
        need = 1
        minV = 0x80
        v = UInt32(c & 0x1F)
      } else if c & 0xF0 == 0xE0 {
        need = 2
        minV = 0x800
        v = UInt32(c & 0x0F)
      } else if c & 0xF8 == 0xF0 {
        need = 3
        minV = 0x10000
        v = UInt32(c & 0x07)
      } else {
        return false
      }
      guard i + need < n else { return false }
      for k in 1...need {
        let cc = b[i + k]
        guard cc & 0xC0 == 0x80 else { return false }
        v = v << 6 | UInt32(cc & 0x3F)
      }
      if v < minV || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) { return false }
      i += need + 1
    }
    return true
  }

  /// Swift's shortest round-trip form, always with "." or "e" so it reads back as REAL.
  static func realText(_ d: Double) -> String {
    var s = d.description
    // byte scan: String.contains(String) goes through Foundation and costs more than the rest
    let plain = s.utf8.allSatisfy {
      $0 != UInt8(ascii: ".") && $0 != UInt8(ascii: "e") && $0 != UInt8(ascii: "n")
    }
    if plain { s += ".0" }
    return s
  }

  /// Decodes the JSON escape at `p[i]` (a backslash) onto `out` as UTF-8 and moves `i` past it;
  /// returns what is wrong with a bad escape (unknown letter, lone surrogate), nil when fine.
  static func decodeJSONEscape(_ p: UnsafeBufferPointer<UInt8>, _ i: inout Int, to out: inout [UInt8])
    -> String?
  {
    let n = p.count
    guard i + 1 < n else { return "bad escape" }
    let e = p[i + 1]
    i += 2
    func hex4() -> UInt32? {
      guard i + 4 <= n else { return nil }
      var v: UInt32 = 0
      for k in 0..<4 {
        guard let d = nibble(p[i + k]) else { return nil }
        v = v << 4 | UInt32(d)
      }
      i += 4
      return v
    }
    switch e {
    case 0x22, 0x5C, 0x2F: out.append(e)
    case UInt8(ascii: "n"): out.append(0x0A)
    case UInt8(ascii: "r"): out.append(0x0D)
    case UInt8(ascii: "t"): out.append(0x09)
    case UInt8(ascii: "b"): out.append(0x08)
    case UInt8(ascii: "f"): out.append(0x0C)
    case UInt8(ascii: "u"):
      guard var v = hex4() else { return "bad \\u escape" }
      if v >= 0xD800 && v <= 0xDBFF {
        guard i + 1 < n, p[i] == 0x5C, p[i + 1] == UInt8(ascii: "u") else { return "lone surrogate" }
        i += 2
        guard let lo = hex4(), lo >= 0xDC00 && lo <= 0xDFFF else { return "bad surrogate pair" }
        v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00)
      } else if v >= 0xDC00 && v <= 0xDFFF {
        return "lone surrogate"
      }
      appendUTF8(v, to: &out)
    default: return "bad escape"
    }
    return nil
  }

  /// Appends a JSON string body (without quotes).
  static func appendJSONEscaped(_ b: UnsafeRawBufferPointer, to out: inout [UInt8]) {
    var start = 0
    var i = 0
    let n = b.count
    while i < n {
      let c = b[i]
      if c >= 0x20 && c != 0x22 && c != 0x5C {
        i += 1
        continue
      }
      if i > start { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[start..<i])) }
      out.append(0x5C)
      switch c {
      case 0x22: out.append(0x22)
      case 0x5C: out.append(0x5C)
      case 0x0A: out.append(UInt8(ascii: "n"))
      case 0x0D: out.append(UInt8(ascii: "r"))
      case 0x09: out.append(UInt8(ascii: "t"))
      default:
        out.append(contentsOf: [
          UInt8(ascii: "u"), 0x30, 0x30, hexDigits[Int(c >> 4)], hexDigits[Int(c & 0xF)],
        ])
      }
      i += 1
      start = i
    }
    if n > start { out.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[start..<n])) }
  }

  /// Decodes a JSON string from `i` (just after its opening quote) through its closing quote,
  /// appending the text to `out`; returns what is wrong, or nil.
  static func decodeJSONString(_ p: UnsafeBufferPointer<UInt8>, _ i: inout Int, into out: inout [UInt8])
    -> String?
  {
    while i < p.count {
      let c = p[i]
      if c == 0x22 {
        i += 1
        return nil
      }
      if c != 0x5C {
        out.append(c)
        i += 1
        continue
      }
      if let problem = decodeJSONEscape(p, &i, to: &out) { return problem }
    }
    return "unterminated string"
  }

  static func appendUTF8(_ v: UInt32, to out: inout [UInt8]) {
    if v < 0x80 {
      out.append(UInt8(v))
    } else if v < 0x800 {
      out.append(UInt8(0xC0 | v >> 6))
      out.append(UInt8(0x80 | v & 0x3F))
    } else if v < 0x10000 {
      out.append(UInt8(0xE0 | v >> 12))
      out.append(UInt8(0x80 | v >> 6 & 0x3F))
      out.append(UInt8(0x80 | v & 0x3F))
    } else {
      out.append(UInt8(0xF0 | v >> 18))
      out.append(UInt8(0x80 | v >> 12 & 0x3F))
      out.append(UInt8(0x80 | v >> 6 & 0x3F))
      out.append(UInt8(0x80 | v & 0x3F))
    }
  }

  /// A CSV header row: the names, quoted where CSV needs it (or a space would be lost).
  static func appendCSVHeader(_ names: [String], to row: inout [UInt8]) {
    for (i, name) in names.enumerated() {
      if i > 0 { row.append(UInt8(ascii: ",")) }
      let b = Array(name.utf8)
      let needsQuotes =
        b.isEmpty || b.contains { $0 == 0x2C || $0 == 0x22 || $0 == 0x0A || $0 == 0x0D }
        || b.first == 0x20 || b.last == 0x20
      if needsQuotes {
        b.withUnsafeBytes { appendCSVQuoted($0, to: &row) }
      } else {
        row.append(contentsOf: b)
      }
    }
    row.append(0x0A)
  }

  /// Appends a CSV field in double quotes (quotes doubled).
  static func appendCSVQuoted(_ b: UnsafeRawBufferPointer, to row: inout [UInt8]) {
    row.append(0x22)
    var start = 0
    for (k, c) in b.enumerated() where c == 0x22 {
      row.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[start...k]))
      row.append(0x22)
      start = k + 1
    }
    row.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[start..<b.count]))
    row.append(0x22)
  }

  static func appendJSONString(_ s: String, to out: inout [UInt8]) {
    out.append(0x22)
    var copy = s
    copy.withUTF8 { appendJSONEscaped(UnsafeRawBufferPointer($0), to: &out) }
    out.append(0x22)
  }

  static func jsonString(_ s: String) -> String {
    var out: [UInt8] = []
    appendJSONString(s, to: &out)
    return String(decoding: out, as: UTF8.self)
  }

  /// The object marker line that precedes an object's statements in sql text.
  static func markerJSON(_ o: SchemaObject) -> String {
    var s = "{\"type\":\(jsonString(o.type)),\"name\":\(jsonString(o.name))"
    if let t = o.table { s += ",\"table\":\(jsonString(t))" }
    return s + "}"
  }

  static let markerPrefix = "-- ai-shell: "
}
