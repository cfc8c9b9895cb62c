import BackupModel
import CPGCopyBinary

/// A table's rows sent to the server in COPY's binary format (docs/ARCHITECTURE.md, "Data flow
/// of `backup restore`"): the server parses binary rows with about a quarter less CPU than text, and a
/// restore is bound by the server. Only tables whose every listed column is bool, int2, int4,
/// int8, text, varchar or bpchar are sent so, and only lines in exactly the server's own output
/// form are converted (CPGCopyBinary); from the first line that is not, the session ends the
/// binary COPY and sends the rest of the table as text, so what is accepted and what is refused
/// is the text format's either way.
final class PGBinaryCopy {
  /// The file header: signature, flags, header extension length.
  static let header: [UInt8] = Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]
  /// The file trailer: a tuple with -1 fields.
  static let trailer: [UInt8] = [0xFF, 0xFF]

  /// `COPY <table> (<columns>) FROM STDIN (FORMAT binary)`.
  let statement: [UInt8]
  let kinds: [UInt8]
  private var out: UnsafeMutableRawBufferPointer

  init(statement: String, kinds: [UInt8]) {
    self.statement = Array(statement.utf8)
    self.kinds = kinds
    out = .allocate(byteCount: 0, alignment: 16)
  }

  deinit { out.deallocate() }

  /// The conversion of a column of the built-in type `oid` with modifier `typmod`
  /// (pg_attribute.atttypmod), or nil for a type without one. A char(n) value (bpchar with a
  /// length) goes without its trailing spaces: the server pads it back to n characters itself.
  static func kind(typeOID oid: Int, typmod: Int = -1) -> UInt8? {
    switch oid {
    case 16: UInt8(AI_SHELL_PG_BOOL)
    case 21: UInt8(AI_SHELL_PG_INT2)
    case 23: UInt8(AI_SHELL_PG_INT4)
    case 20: UInt8(AI_SHELL_PG_INT8)
    case 1042 where typmod > 4: UInt8(AI_SHELL_PG_BPCHAR)  // typmod: n + VARHDRSZ
    case 25, 1042, 1043: UInt8(AI_SHELL_PG_TEXT)  // text, bpchar without a length, varchar
    default: nil
    }
  }

  /// Converts `rows` (whole lines of COPY text) and hands the tuples to `send`; returns how many
  /// bytes of `rows` were converted: all of them, or up to the first line that does not convert.
  func convert(_ rows: UnsafeRawBufferPointer, send: (UnsafeRawBufferPointer) throws -> Void) rethrows -> Int
  {
    guard let base = rows.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return 0 }
    grow(to: ai_shell_pg_binary_room(rows.count, Int32(kinds.count)))
    var at = 0
    while at < rows.count {
      var consumed = 0
      var written = 0
      let status = kinds.withUnsafeBufferPointer { k in
        ai_shell_pg_copy_binary(
          base + at, rows.count - at, k.baseAddress, Int32(k.count),
          out.baseAddress!.assumingMemoryBound(to: UInt8.self), out.count, &consumed, &written)
      }
      at += consumed
      if written > 0 { try send(UnsafeRawBufferPointer(rebasing: out[0..<written])) }
      // full: the tuples so far were handed on and the buffer is free again; else done or stopped
      guard Int(status) == Int(AI_SHELL_PG_FULL) else { return at }
    }
    return at
  }

  /// Makes the buffer at least `bytes` long (its contents are not kept).
  private func grow(to bytes: Int) {
    guard out.count < bytes else { return }
    out.deallocate()
    out = .allocate(byteCount: bytes, alignment: 16)
  }

  /// The target and the column list of a `COPY <table> (<columns>) FROM stdin;` line as written
  /// (quoted as in the file) and the column names it lists; nil for any other form (then the
  /// table goes as text).
  static func parse(copyLine line: [UInt8]) -> (target: String, columnList: String, columns: [String])? {
    var end = line.count
    while end > 0, line[end - 1] == 0x0A || line[end - 1] == 0x0D || line[end - 1] == 0x20 { end -= 1 }
    let s = line[..<end]
    guard s.starts(with: Array("COPY ".utf8)) else { return nil }
    var i = s.startIndex + 5
    // the qualified name: identifiers joined by '.'
    let nameStart = i
    for part in 1...2 {  // table or schema.table
      guard identifier(s, &i) != nil else { return nil }
      guard i < s.endIndex, s[i] == 0x2E else { break }
      guard part == 1 else { return nil }
      i += 1
    }
    let target = String(decoding: s[nameStart..<i], as: UTF8.self)
    while i < s.endIndex, s[i] == 0x20 { i += 1 }
    guard i < s.endIndex, s[i] == 0x28 else { return nil }
    let listStart = i + 1
    var columns: [String] = []
    i += 1
    while true {
      while i < s.endIndex, s[i] == 0x20 { i += 1 }
      guard let name = identifier(s, &i) else { return nil }
      columns.append(name)
      while i < s.endIndex, s[i] == 0x20 { i += 1 }
      guard i < s.endIndex else { return nil }
      if s[i] == 0x29 { break }
      guard s[i] == 0x2C else { return nil }
      i += 1
    }
    let columnList = String(decoding: s[listStart..<i], as: UTF8.self)
    let rest = String(decoding: s[(i + 1)...], as: UTF8.self)
    guard rest.trimmingPrefix(while: { $0 == " " }).lowercased() == "from stdin;" else { return nil }
    return (target, columnList, columns)
  }

  /// One SQL identifier at `i` (advanced past it): a quoted one with "" for a quote, or an
  /// unquoted one of ASCII letters, digits, _ and $ (folded to lower case, as the server does).
  static func identifier(_ s: ArraySlice<UInt8>, _ i: inout Int) -> String? {
    guard i < s.endIndex else { return nil }
    if s[i] == 0x22 {
      var name: [UInt8] = []
      var j = i + 1
      while j < s.endIndex {
        if s[j] == 0x22 {
          guard j + 1 < s.endIndex, s[j + 1] == 0x22 else {
            i = j + 1
            return name.isEmpty ? nil : String(decoding: name, as: UTF8.self)
          }
          j += 1
        }
        name.append(s[j])
        j += 1
      }
      return nil
    }
    var name: [UInt8] = []
    while i < s.endIndex {
      let c = s[i]
      switch c {
      case 0x61...0x7A, 0x5F: name.append(c)
      case 0x41...0x5A: name.append(c + 0x20)
      case 0x30...0x39, 0x24:
        guard !name.isEmpty else { return nil }
        name.append(c)
      default: return name.isEmpty ? nil : String(decoding: name, as: UTF8.self)
      }
      i += 1
    }
    return name.isEmpty ? nil : String(decoding: name, as: UTF8.self)
  }
}

/// One table's `COPY … FROM STDIN` on a restore connection: binary while its rows convert, text
/// from the first line that does not.
struct PGCopyIn {
  /// The part's own (text) `COPY … FROM stdin;` line.
  let copyLine: [UInt8]
  var binary: PGBinaryCopy?
  /// The rows of a binary COPY that was ended for the switch to text.
  var rows: Int64 = 0
}

/// The server refused the rows of a binary COPY when it was ended to go on in text.
struct PGCopyRefused: Error {
  var error: PGStatementError
}

extension PGRestoreSession {
  /// The binary COPY for a table part's `COPY … FROM stdin;` line when every column it lists has a
  /// conversion (`PGBinaryCopy.kind`); nil (text) otherwise, or when the line is in another form.
  func binaryCopy(for copyLine: [UInt8]) throws -> PGBinaryCopy? {
    // to_regclass(text): PostgreSQL 9.6 and newer
    guard db.serverVersionNumber >= 90600, let parsed = PGBinaryCopy.parse(copyLine: copyLine) else {
      return nil
    }
    var types: [String: (oid: Int, typmod: Int)] = [:]
    // to_regclass: a missing table is no rows here (and the text COPY's own error later)
    for row in try db.query(
      """
      SELECT a.attname, a.atttypid::int8, a.atttypmod FROM pg_catalog.pg_attribute a
      WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
      """, [parsed.target])
    {
      if let name = row[0], let oid = row[1].flatMap({ Int($0) }), let typmod = row[2].flatMap({ Int($0) }) {
        types[name] = (oid, typmod)
      }
    }
    var kinds: [UInt8] = []
    for column in parsed.columns {
      guard let t = types[column], let kind = PGBinaryCopy.kind(typeOID: t.oid, typmod: t.typmod) else {
        return nil
      }
      kinds.append(kind)
    }
    return PGBinaryCopy(
      statement: "COPY \(parsed.target) (\(parsed.columnList)) FROM STDIN (FORMAT binary)", kinds: kinds)
  }

  /// Starts a table part's COPY: binary when `binaryCopy` allows it, else the part's own line.
  func startCopy(_ copyLine: [UInt8], table: String?) throws -> PGCopyIn {
    guard let binary = try binaryCopy(for: copyLine) else {
      try beginCopy(copyLine, table: table)
      return PGCopyIn(copyLine: copyLine)
    }
    try beginCopy(binary.statement, table: table)
    try PGBinaryCopy.header.withUnsafeBytes { try db.putCopyData($0) }
    return PGCopyIn(copyLine: copyLine, binary: binary)
  }

  /// Sends whole lines of COPY text. On the first line that does not convert, ends the binary
  /// COPY (a refusal of its rows throws `PGCopyRefused`) and sends the rest, and everything
  /// after it, in a text COPY.
  func send(_ lines: [UInt8], on copy: inout PGCopyIn, table: String?) throws {
    try lines.withUnsafeBytes { lines in
      guard let binary = copy.binary else { return try db.putCopyData(lines) }
      let converted = try binary.convert(lines) { try db.putCopyData($0) }
      guard converted < lines.count else { return }
      try PGBinaryCopy.trailer.withUnsafeBytes { try db.putCopyData($0) }
      do {
        copy.rows += try db.endCopyIn()
      } catch let e as PGStatementError {
        throw PGCopyRefused(error: e)
      }
      copy.binary = nil
      try beginCopy(copy.copyLine, table: table)
      try db.putCopyData(UnsafeRawBufferPointer(rebasing: lines[converted...]))
    }
  }

  /// Ends the COPY; returns the rows the server copied (with those of a binary COPY before it).
  func endCopy(_ copy: PGCopyIn) throws -> Int64 {
    if copy.binary != nil { try PGBinaryCopy.trailer.withUnsafeBytes { try db.putCopyData($0) } }
    return copy.rows + (try db.endCopyIn())
  }
}
