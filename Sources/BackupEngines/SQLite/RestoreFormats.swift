import BackupModel
import CSQLite
import Foundation

/// The json format's lines, shared by the engines that read json backups.
struct BackupHeaderLine: Decodable {
  struct Info: Decodable {
    var engine: String
    var format: String
    var formatVersion: Int
  }
  var backup: Info
  enum CodingKeys: String, CodingKey { case backup = "$backup" }
}

private struct PragmaLine: Decodable {
  var pragma: String
  var value: Int64
  enum CodingKeys: String, CodingKey {
    case pragma = "$pragma"
    case value
  }
}

struct ObjectLine: Decodable {
  var object: SchemaObject
  var sql: String
  enum CodingKeys: String, CodingKey {
    case object = "$object"
    case sql
  }
}

struct TableHeaderLine: Decodable {
  struct Column: Decodable {
    var name: String
    var type: String
  }
  var table: String
  var columns: [Column]
  enum CodingKeys: String, CodingKey {
    case table = "$table"
    case columns
  }
}

func decodeLine<T: Decodable>(_ type: T.Type, _ line: [UInt8], what: String) throws -> T {
  do {
    return try JSONDecoder().decode(T.self, from: Data(line))
  } catch {
    throw BackupError(.corrupt, "bad \(what) line in json backup")
  }
}

extension RestoreSession {
  /// A prepared `INSERT INTO "t"(cols) VALUES(?,...)`, or nil when the table is skipped.
  func prepareInsert(table: String, columns: [String]) throws -> OpaquePointer? {
    guard wants(table: table) else { return nil }
    let cols = columns.map { quoteIdentifier($0) }.joined(separator: ",")
    let marks = Array(repeating: "?", count: columns.count).joined(separator: ",")
    let sql = "INSERT INTO \(quoteIdentifier(table))(\(cols)) VALUES(\(marks))"
    var stmt: OpaquePointer?
    statementNumber += 1
    let rc = sqlite3_prepare_v2(db.handle, sql, -1, &stmt, nil)
    guard rc == SQLITE_OK, let stmt else {
      let message = db.errorMessage
      throw BackupError(.database, "statement \(statementNumber) failed: \(message)")
    }
    return stmt
  }

  /// Steps a bound insert; returns true when the row went in.
  func stepInsert(_ stmt: OpaquePointer) throws -> Bool {
    statementNumber += 1
    let rc = sqlite3_step(stmt)
    sqlite3_reset(stmt)
    sqlite3_clear_bindings(stmt)
    if rc == SQLITE_DONE {
      report.statementsExecuted += 1
      return true
    }
    try failed(db.errorMessage)
    return false
  }

  func applyJSON(part: RestorePart, reader: InputReader) throws {
    var line: [UInt8] = []
    switch part.kind {
    case .schema, .postData:
      var first = true
      while try reader.readLine(into: &line) {
        guard line.contains(where: { !isSpace($0) }) else { continue }
        if first && part.kind == .schema {
          let h = try decodeLine(BackupHeaderLine.self, line, what: "header")
          guard h.backup.engine == "sqlite", h.backup.format == "json", h.backup.formatVersion == 1 else {
            throw BackupError(.corrupt, "json backup header is for \(h.backup.engine)/\(h.backup.format)")
          }
          first = false
          continue
        }
        first = false
        if line.starts(with: "{\"$pragma\"".utf8) {
          let p = try decodeLine(PragmaLine.self, line, what: "pragma")
          guard p.pragma == "user_version" || p.pragma == "application_id" else {
            throw BackupError(.corrupt, "unexpected pragma \(p.pragma) in json backup")
          }
          if request.tables == nil { try execute("PRAGMA \(p.pragma)=\(p.value)") }
        } else {
          let o = try decodeLine(ObjectLine.self, line, what: "object")
          if wants(object: o.object) { try execute(o.sql) }
        }
      }
    case .table:
      guard try reader.readLine(into: &line) else {
        throw BackupError(.corrupt, "json table part is empty", hint: "the backup is truncated")
      }
      let header = try decodeLine(TableHeaderLine.self, line, what: "table header")
      let names = header.columns.map(\.name)
      let stmt = try prepareInsert(table: header.table, columns: names)
      defer { if let stmt { sqlite3_finalize(stmt) } }
      var binder = JSONRowBinder(names: names)
      var rows: Int64 = 0
      while try reader.readLine(into: &line) {
        guard let stmt else { continue }
        guard line.contains(where: { !isSpace($0) }) else { continue }
        try binder.bind(line, to: stmt)
        if try stepInsert(stmt) { rows += 1 }
      }
      if stmt != nil { report.tables.append(TableRestoreResult(name: header.table, rows: rows)) }
    }
  }

  func applyCSV(part: RestorePart, reader: InputReader) throws {
    guard let entry = try Tar.readHeader(from: reader) else {
      throw BackupError(.corrupt, "csv backup part has no tar entry")
    }
    switch part.kind {
    case .schema, .postData:
      let expected = part.kind == .schema ? "schema.sql" : "post-data.sql"
      guard entry.name == expected else {
        throw BackupError(.corrupt, "csv backup part has entry \(entry.name), expected \(expected)")
      }
      let text = try reader.readExactly(Int(entry.size))
      try reader.skip(Tar.paddingCount(for: entry.size))
      var offset = 0
      _ = try runScript(partKind: part.kind, partTable: nil) { line in
        line.removeAll(keepingCapacity: true)
        guard offset < text.count else { return false }
        let end = text[offset...].firstIndex(of: 0x0A).map { $0 + 1 } ?? text.count
        line.append(contentsOf: text[offset..<end])
        offset = end
        return true
      }
      if part.kind == .postData, try Tar.readHeader(from: reader) != nil {
        throw BackupError(.corrupt, "csv backup has an unexpected entry after post-data.sql")
      }
    case .table:
      let table = part.table ?? ""
      guard entry.name == Tar.entryName(forTable: table, suffix: ".csv") else {
        throw BackupError(.corrupt, "csv backup part has entry \(entry.name) for table \"\(table)\"")
      }
      let loader = CSVTableLoader(session: self, table: table)
      defer { loader.finalize() }
      var left = entry.size
      var chunk: [UInt8] = []
      while left > 0 {
        chunk.removeAll(keepingCapacity: true)
        let n = try reader.read(upTo: Int(min(left, 1 << 18)), appendingTo: &chunk)
        guard n > 0 else { throw BackupError(.corrupt, "csv entry for \"\(table)\" ended early") }
        left -= Int64(n)
        try chunk.withUnsafeBytes { try loader.feed($0) }
      }
      try loader.finish()
      try reader.skip(Tar.paddingCount(for: entry.size))
      if wants(table: table) { report.tables.append(TableRestoreResult(name: table, rows: loader.rows)) }
    }
  }
}

/// Binds one NDJSON row (an object of column -> value) to an insert, by storage class:
/// null, integer, real (with "." or "e"), string, {"$base64"}, {"$real"}, {"$text64"}.
struct JSONRowBinder {
  let names: [[UInt8]]
  var scratch: [UInt8] = []

  init(names: [String]) {
    self.names = names.map { Array($0.utf8) }
  }

  private func bad(_ what: String) -> BackupError {
    BackupError(.corrupt, "bad json row in backup: \(what)")
  }

  enum Str {
    case slice(Int, Int)
    case scratch
  }

  mutating func bind(_ line: [UInt8], to stmt: OpaquePointer) throws {
    try line.withUnsafeBufferPointer { buf in try bind(buf, to: stmt) }
  }

  private mutating func bind(_ p: UnsafeBufferPointer<UInt8>, to stmt: OpaquePointer) throws {
    var i = 0
    let n = p.count
    func skipWS() { while i < n && isSpace(p[i]) { i += 1 } }
    func expect(_ c: UInt8) throws {
      skipWS()
      guard i < n, p[i] == c else { throw bad("expected \(Character(UnicodeScalar(c)))") }
      i += 1
    }
    try expect(UInt8(ascii: "{"))
    skipWS()
    if i < n && p[i] == UInt8(ascii: "}") {
      i += 1
    } else {
      var k = 0
      while true {
        try expect(0x22)
        let key = try parseString(p, &i)
        let index = try columnIndex(key, p, hint: k)
        try expect(UInt8(ascii: ":"))
        skipWS()
        try bindValue(p, &i, stmt: stmt, index: Int32(index + 1))
        k += 1
        skipWS()
        guard i < n else { throw bad("unterminated object") }
        if p[i] == UInt8(ascii: ",") {
          i += 1
          continue
        }
        guard p[i] == UInt8(ascii: "}") else { throw bad("expected , or }") }
        i += 1
        break
      }
    }
    skipWS()
    guard i == n else { throw bad("trailing characters") }
  }

  private func columnIndex(_ key: Str, _ p: UnsafeBufferPointer<UInt8>, hint: Int) throws -> Int {
    func matches(_ name: [UInt8]) -> Bool {
      switch key {
      case .slice(let s, let e):
        guard name.count == e - s else { return false }
        return name.withUnsafeBufferPointer { nb in
          nb.isEmpty || memcmp(nb.baseAddress!, p.baseAddress! + s, nb.count) == 0
        }
      case .scratch: return name == scratch
      }
    }
    if hint < names.count && matches(names[hint]) { return hint }
    if let i = names.firstIndex(where: matches) { return i }
    throw bad("unknown column")
  }

  /// Parses a string whose opening quote was consumed; escapes are decoded into `scratch`.
  private mutating func parseString(_ p: UnsafeBufferPointer<UInt8>, _ i: inout Int) throws -> Str {
    let start = i
    let n = p.count
    while i < n && p[i] != 0x22 && p[i] != 0x5C { i += 1 }
    guard i < n else { throw bad("unterminated string") }
    if p[i] == 0x22 {
      i += 1
      return .slice(start, i - 1)
    }
    scratch.removeAll(keepingCapacity: true)
    scratch.append(contentsOf: UnsafeBufferPointer(rebasing: p[start..<i]))
    while i < n {
      let c = p[i]
      if c == 0x22 {
        i += 1
        return .scratch
      }
      if c != 0x5C {
        scratch.append(c)
        i += 1
        continue
      }
      if let problem = Bytes.decodeJSONEscape(p, &i, to: &scratch) { throw bad(problem) }
    }
    throw bad("unterminated string")
  }

  private func bytes(_ s: Str, _ p: UnsafeBufferPointer<UInt8>) -> ArraySlice<UInt8> {
    switch s {
    case .slice(let a, let b): return ArraySlice(UnsafeBufferPointer(rebasing: p[a..<b]))
    case .scratch: return scratch[...]
    }
  }

  private mutating func bindValue(
    _ p: UnsafeBufferPointer<UInt8>, _ i: inout Int, stmt: OpaquePointer, index: Int32
  )
    throws
  {
    let n = p.count
    guard i < n else { throw bad("missing value") }
    let c = p[i]
    switch c {
    case 0x22:
      i += 1
      let s = try parseString(p, &i)
      switch s {
      case .slice(let a, let b):
        bindText(stmt, index, UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: p[a..<b])))
      case .scratch:
        scratch.withUnsafeBytes { bindText(stmt, index, $0) }
      }
    case UInt8(ascii: "n"):
      guard i + 4 <= n, p[i + 1] == UInt8(ascii: "u"), p[i + 2] == UInt8(ascii: "l"),
        p[i + 3] == UInt8(ascii: "l")
      else {
        throw bad("bad literal")
      }
      i += 4
      sqlite3_bind_null(stmt, index)
    case UInt8(ascii: "-"), 0x30...0x39:
      let start = i
      var isReal = false
      while i < n {
        let d = p[i]
        if d >= 0x30 && d <= 0x39 || d == UInt8(ascii: "-") {
        } else if d == UInt8(ascii: ".") || d == UInt8(ascii: "e") || d == UInt8(ascii: "E")
          || d == UInt8(ascii: "+")
        {
          isReal = true
        } else {
          break
        }
        i += 1
      }
      if isReal {
        guard let v = Double(String(decoding: UnsafeBufferPointer(rebasing: p[start..<i]), as: UTF8.self))
        else {
          throw bad("bad number")
        }
        sqlite3_bind_double(stmt, index, v)
      } else {
        guard let v = parseInt64(UnsafeBufferPointer(rebasing: p[start..<i])) else {
          throw bad("bad integer")
        }
        sqlite3_bind_int64(stmt, index, v)
      }
    case UInt8(ascii: "{"):
      i += 1
      while i < n && isSpace(p[i]) { i += 1 }
      guard i < n, p[i] == 0x22 else { throw bad("bad tagged value") }
      i += 1
      let tag = Array(bytes(try parseString(p, &i), p))
      while i < n && isSpace(p[i]) { i += 1 }
      guard i < n, p[i] == UInt8(ascii: ":") else { throw bad("bad tagged value") }
      i += 1
      while i < n && isSpace(p[i]) { i += 1 }
      guard i < n, p[i] == 0x22 else { throw bad("bad tagged value") }
      i += 1
      let value = bytes(try parseString(p, &i), p)
      while i < n && isSpace(p[i]) { i += 1 }
      guard i < n, p[i] == UInt8(ascii: "}") else { throw bad("bad tagged value") }
      i += 1
      switch String(decoding: tag, as: UTF8.self) {
      case "$base64":
        let b = try Bytes.decodeBase64(value)
        b.withUnsafeBytes { bindBlob(stmt, index, $0) }
      case "$text64":
        let b = try Bytes.decodeBase64(value)
        b.withUnsafeBytes { bindText(stmt, index, $0) }
      case "$real":
        switch String(decoding: value, as: UTF8.self) {
        case "Infinity": sqlite3_bind_double(stmt, index, .infinity)
        case "-Infinity": sqlite3_bind_double(stmt, index, -.infinity)
        default: throw bad("bad $real")
        }
      default: throw bad("unknown tag")
      }
    default:
      throw bad("unexpected value")
    }
  }
}

/// Decimal Int64 with overflow check (accepts -9223372036854775808).
func parseInt64(_ b: UnsafeBufferPointer<UInt8>) -> Int64? {
  var i = 0
  var negative = false
  if i < b.count && b[i] == UInt8(ascii: "-") {
    negative = true
    i += 1
  }
  guard i < b.count else { return nil }
  var v: UInt64 = 0
  while i < b.count {
    let d = b[i] &- 0x30
    guard d < 10 else { return nil }
    let (m, o1) = v.multipliedReportingOverflow(by: 10)
    let (s, o2) = m.addingReportingOverflow(UInt64(d))
    guard !o1, !o2 else { return nil }
    v = s
    i += 1
  }
  if negative {
    guard v <= UInt64(Int64.max) + 1 else { return nil }
    return v == UInt64(Int64.max) + 1 ? Int64.min : -Int64(v)
  }
  guard v <= UInt64(Int64.max) else { return nil }
  return Int64(v)
}

/// Streams one csv entry into a table: the header row names the columns, every other row is
/// bound by storage class (empty = NULL, quoted = TEXT, X'..' = BLOB, "." or "e" = REAL).
final class CSVTableLoader {
  let session: RestoreSession
  let table: String
  var stmt: OpaquePointer?
  var header: [String]?
  var rows: Int64 = 0
  var field: [UInt8] = []
  var fieldIndex = 0
  var quoted = false
  var state = State.fieldStart
  var skip = false

  enum State {
    case fieldStart, unquoted, inQuotes, quoteInQuotes
  }

  init(session: RestoreSession, table: String) {
    self.session = session
    self.table = table
    skip = !session.wants(table: table)
  }

  func finalize() {
    if let stmt { sqlite3_finalize(stmt) }
    stmt = nil
  }

  private func bad(_ what: String) -> BackupError {
    BackupError(.corrupt, "bad csv data for table \"\(table)\": \(what)")
  }

  func feed(_ chunk: UnsafeRawBufferPointer) throws {
    for c in chunk {
      switch state {
      case .fieldStart:
        if c == 0x22 {
          quoted = true
          state = .inQuotes
        } else if c == 0x2C {
          try endField()
        } else if c == 0x0A {
          try endField()
          try endRow()
        } else if c != 0x0D {
          field.append(c)
          state = .unquoted
        }
      case .unquoted:
        if c == 0x2C {
          try endField()
        } else if c == 0x0A {
          try endField()
          try endRow()
        } else if c != 0x0D {
          field.append(c)
        }
      case .inQuotes:
        if c == 0x22 { state = .quoteInQuotes } else { field.append(c) }
      case .quoteInQuotes:
        if c == 0x22 {
          field.append(c)
          state = .inQuotes
        } else if c == 0x2C {
          try endField()
        } else if c == 0x0A {
          try endField()
          try endRow()
        } else if c != 0x0D {
          throw bad("characters after a closing quote")
        }
      }
    }
  }

  func finish() throws {
    if state == .inQuotes { throw bad("entry ends inside a quoted field") }
    if state != .fieldStart || fieldIndex > 0 {
      try endField()
      try endRow()
    }
    if header == nil { throw bad("no header row") }
  }

  private func endField() throws {
    defer {
      field.removeAll(keepingCapacity: true)
      quoted = false
      state = .fieldStart
      fieldIndex += 1
    }
    guard header != nil else {
      headerFields.append(String(decoding: field, as: UTF8.self))
      return
    }
    guard !skip, let stmt else { return }
    let index = Int32(fieldIndex + 1)
    guard fieldIndex < header!.count else { throw bad("too many fields") }
    if quoted {
      field.withUnsafeBytes { bindText(stmt, index, $0) }
      return
    }
    if field.isEmpty {
      sqlite3_bind_null(stmt, index)
      return
    }
    if field.count >= 3 && field[0] == UInt8(ascii: "X") && field[1] == 0x27 && field.last == 0x27 {
      let b = try Bytes.decodeHex(field[2..<(field.count - 1)])
      b.withUnsafeBytes { bindBlob(stmt, index, $0) }
      return
    }
    let isReal = field.contains {
      $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") || $0 == UInt8(ascii: "I")
    }
    if isReal {
      let text = String(decoding: field, as: UTF8.self)
      let v: Double? = text == "Inf" ? .infinity : text == "-Inf" ? -.infinity : Double(text)
      guard let v, text != "inf", text != "infinity" else { throw bad("bad number \(text)") }
      sqlite3_bind_double(stmt, index, v)
    } else {
      guard let v = field.withUnsafeBufferPointer({ parseInt64($0) }) else { throw bad("bad integer") }
      sqlite3_bind_int64(stmt, index, v)
    }
  }

  private var headerFields: [String] = []

  private func endRow() throws {
    defer { fieldIndex = 0 }
    guard let header else {
      header = headerFields
      if !skip { stmt = try session.prepareInsert(table: table, columns: headerFields) }
      return
    }
    guard !skip, let stmt else { return }
    guard fieldIndex == header.count else {
      throw bad("row has \(fieldIndex) fields, expected \(header.count)")
    }
    if try session.stepInsert(stmt) { rows += 1 }
  }
}
