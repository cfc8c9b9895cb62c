import BackupModel
import Foundation

/// Rows of a json or csv table part turned into multi-row INSERT statements of about 1 MiB
/// (the literals the sql format writes), run as soon as each is full.
final class MyInsertBatcher {
  let session: MyRestoreSession
  let table: String
  let prefix: [UInt8]
  let columnCount: Int
  var statement: [UInt8] = []
  var open = false
  var rows: Int64 = 0
  /// Whether the rows are executed (false when `--tables` leaves the table out).
  let run: Bool

  init(session: MyRestoreSession, table: String, columns: [String], run: Bool) {
    self.session = session
    self.table = table
    self.run = run
    columnCount = columns.count
    prefix = Array(
      "INSERT INTO \(myIdent(table)) (\(columns.map(myIdent).joined(separator: ", "))) VALUES ".utf8)
    statement.reserveCapacity(1 << 20 + 64 * 1024)
  }

  /// Appends one row whose values are already SQL literals, separated by commas.
  func beginRow() {
    statement.append(
      contentsOf: open ? [UInt8(ascii: ","), UInt8(ascii: "(")] : prefix + [UInt8(ascii: "(")])
    open = true
  }

  func endRow() throws {
    statement.append(UInt8(ascii: ")"))
    if statement.count >= 1 << 20 { try flush() }
  }

  func flush() throws {
    guard open else { return }
    defer {
      statement.removeAll(keepingCapacity: true)
      open = false
    }
    guard run else { return }
    session.statementNumber += 1
    do {
      rows += try statement.withUnsafeBytes { try session.db.execRaw($0) }
      session.report.statementsExecuted += 1
      try session.loaded(bytes: statement.count)
    } catch let e as MyStatementError {
      try session.failed(e, object: SchemaObject(type: "data", name: table, table: table))
    }
  }

  // literals

  static func corrupt(_ what: String, _ table: String) -> BackupError {
    BackupError(
      .corrupt, "bad \(what) in the backup's rows of table \"\(table)\"", hint: "the backup is damaged")
  }

  /// A number as the dump wrote it (digits, sign, point, exponent only: nothing else reaches SQL).
  func appendNumber(_ b: UnsafeRawBufferPointer) throws {
    guard !b.isEmpty,
      b.allSatisfy({
        ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x2B || $0 == 0x2E || $0 == 0x65 || $0 == 0x45
      })
    else { throw MyInsertBatcher.corrupt("number", table) }
    statement.append(contentsOf: b)
  }

  func appendText(_ b: UnsafeRawBufferPointer) { MySQLValue.appendText(b, to: &statement) }
  func appendBinary(_ b: UnsafeRawBufferPointer) { MySQLValue.appendBinary(b, to: &statement) }
  func appendNull() { statement.append(contentsOf: "NULL".utf8) }
  func appendDefault() { statement.append(contentsOf: "DEFAULT".utf8) }
  func appendComma() { statement.append(UInt8(ascii: ",")) }
}

extension MyRestoreSession {
  /// The SQL script of a schema or post-data part in any format: the sql part itself, the
  /// `schema.sql` / `post-data.sql` tar entry of csv, or json's `$object` lines put back into the
  /// sql layout (marker line, then the object's text).
  func script(of reader: InputReader, format: DumpFormat) throws -> [UInt8] {
    var bytes: [UInt8] = []
    switch format {
    case .sql:
      while try reader.read(upTo: 1 << 20, appendingTo: &bytes) > 0 {}
    case .csv:
      guard let entry = try Tar.readHeader(from: reader) else { return [] }
      guard entry.name.hasSuffix(".sql") else {
        throw BackupError(.corrupt, "unexpected tar entry \"\(entry.name)\" where a script belongs")
      }
      bytes = try reader.readExactly(Int(entry.size))
      try reader.skip(Tar.paddingCount(for: entry.size))
      try drain(reader)
    case .json:
      var line: [UInt8] = []
      while try reader.readLine(into: &line) {
        if line.allSatisfy(MyText.isSpace) { continue }
        if line.starts(with: Array("{\"$backup\"".utf8)) {
          guard try decodeLine(BackupHeaderLine.self, line, what: "$backup").backup.engine == "mysql" else {
            throw BackupError(.corrupt, "this json backup is not a MySQL/MariaDB backup")
          }
          continue
        }
        let o = try decodeLine(ObjectLine.self, line, what: "$object")
        bytes += Array((Bytes.markerPrefix + Bytes.markerJSON(o.object) + "\n" + o.sql).utf8)
      }
    }
    return bytes
  }

  /// A json table part: the `$table` header, then one object per row.
  func runJSONTablePart(reader: InputReader, table: String?) throws {
    var line: [UInt8] = []
    guard try reader.readLine(into: &line) else {
      throw BackupError(.corrupt, "the json part of table \(table ?? "?") has no $table header")
    }
    let header = try decodeLine(TableHeaderLine.self, line, what: "$table header")
    let name = table ?? header.table
    let names = header.columns.map(\.name)
    let batch = MyInsertBatcher(session: self, table: name, columns: names, run: wants(table: table))
    let keys = names.map { Array($0.utf8) }
    var byName: [[UInt8]: Int] = [:]
    for (i, k) in keys.enumerated() { byName[k] = i }
    var parser = MyJSONRowParser(table: name)
    while try reader.readLine(into: &line) {
      if line.allSatisfy(MyText.isSpace) { continue }
      try parser.parse(line, keys: keys, byName: byName)
      batch.beginRow()
      for i in 0..<keys.count {
        if i > 0 { batch.appendComma() }
        parser.appendLiteral(i, to: batch)
      }
      try batch.endRow()
    }
    try batch.flush()
    if batch.run { report.tables.append(TableRestoreResult(name: name, rows: batch.rows)) }
  }

  /// A csv table part: one tar entry `<table>.csv` with a header row.
  func runCSVTablePart(reader: InputReader, table: String?) throws {
    guard let entry = try Tar.readHeader(from: reader) else {
      throw BackupError(.corrupt, "the csv part of table \(table ?? "?") has no tar entry")
    }
    let loader = MyCSVLoader(session: self, table: table ?? entry.name, run: wants(table: table))
    var left = entry.size
    var chunk: [UInt8] = []
    while left > 0 {
      chunk.removeAll(keepingCapacity: true)
      let n = try reader.read(upTo: Int(min(left, 1 << 20)), appendingTo: &chunk)
      guard n > 0 else { throw BackupError(.corrupt, "the csv part of table \(table ?? "?") is truncated") }
      try chunk.withUnsafeBytes { try loader.feed($0) }
      left -= Int64(n)
    }
    try loader.finish()
    try reader.skip(Tar.paddingCount(for: entry.size))
    if let b = loader.batch, b.run { report.tables.append(TableRestoreResult(name: b.table, rows: b.rows)) }
  }

  func wants(table: String?) -> Bool { table.map { request.tables?.contains($0) ?? true } ?? true }
}

/// Parses one json row object into per-column SQL literal kinds (no allocation per value beyond
/// the reused buffers).
struct MyJSONRowParser {
  enum Value {
    case absent, null, number(Range<Int>), text(Range<Int>), binary(Range<Int>)
  }
  let table: String
  /// Decoded string and base64 bytes of the current row; values point into it.
  var scratch: [UInt8] = []
  var line: [UInt8] = []
  var values: [Value] = []

  init(table: String) { self.table = table }

  func bad(_ what: String) -> BackupError { MyInsertBatcher.corrupt("json (\(what))", table) }

  mutating func parse(_ row: [UInt8], keys: [[UInt8]], byName: [[UInt8]: Int]) throws {
    line = row
    scratch.removeAll(keepingCapacity: true)
    values = Array(repeating: .absent, count: keys.count)
    var i = 0
    let n = line.count
    func skipWS() { while i < n && MyText.isSpace(line[i]) { i += 1 } }
    func expect(_ c: UInt8) throws {
      skipWS()
      guard i < n && line[i] == c else { throw bad("expected \(Character(UnicodeScalar(c)))") }
      i += 1
    }
    try expect(UInt8(ascii: "{"))
    skipWS()
    if i < n && line[i] == UInt8(ascii: "}") { return }
    var index = 0
    while true {
      skipWS()
      let key = try string(&i)
      let k = Array(scratch[key])
      scratch.removeSubrange(key)
      let col: Int
      if index < keys.count && keys[index] == k {
        col = index
      } else if let c = byName[k] {
        col = c
      } else {
        throw bad("unknown column \(String(decoding: k, as: UTF8.self))")
      }
      try expect(UInt8(ascii: ":"))
      skipWS()
      values[col] = try value(&i)
      index = col + 1
      skipWS()
      guard i < n else { throw bad("unterminated object") }
      if line[i] == UInt8(ascii: ",") {
        i += 1
        continue
      }
      guard line[i] == UInt8(ascii: "}") else { throw bad("expected , or }") }
      return
    }
  }

  private mutating func value(_ i: inout Int) throws -> Value {
    let n = line.count
    guard i < n else { throw bad("missing value") }
    switch line[i] {
    case UInt8(ascii: "n"):
      guard line[i...].starts(with: Array("null".utf8)) else { throw bad("bad literal") }
      i += 4
      return .null
    case UInt8(ascii: "\""):
      return .text(try string(&i))
    case UInt8(ascii: "{"):
      i += 1
      while i < n && MyText.isSpace(line[i]) { i += 1 }
      let tag = try string(&i)
      let tagText = String(decoding: scratch[tag], as: UTF8.self)
      scratch.removeSubrange(tag)
      while i < n && MyText.isSpace(line[i]) { i += 1 }
      guard i < n && line[i] == UInt8(ascii: ":") else { throw bad("expected :") }
      i += 1
      while i < n && MyText.isSpace(line[i]) { i += 1 }
      let encoded = try string(&i)
      let decoded = try Bytes.decodeBase64(scratch[encoded])
      scratch.removeSubrange(encoded)
      let start = scratch.count
      scratch += decoded
      while i < n && MyText.isSpace(line[i]) { i += 1 }
      guard i < n && line[i] == UInt8(ascii: "}") else { throw bad("expected }") }
      i += 1
      guard tagText == "$base64" || tagText == "$text64" else { throw bad("unknown tag \(tagText)") }
      return .binary(start..<scratch.count)
    default:
      let start = i
      while i < n && !MyText.isSpace(line[i]) && line[i] != UInt8(ascii: ",") && line[i] != UInt8(ascii: "}")
      {
        i += 1
      }
      guard i > start,
        line[start..<i].allSatisfy({
          ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D || $0 == 0x2B || $0 == 0x2E || $0 == 0x65 || $0 == 0x45
        })
      else { throw bad("bad number") }
      let s = scratch.count
      scratch += line[start..<i]
      return .number(s..<scratch.count)
    }
  }

  /// Decodes a JSON string at `i` (at its opening quote) onto the end of `scratch`.
  private mutating func string(_ i: inout Int) throws -> Range<Int> {
    let n = line.count
    guard i < n && line[i] == UInt8(ascii: "\"") else { throw bad("expected a string") }
    i += 1
    let start = scratch.count
    while true {
      guard i < n else { throw bad("unterminated string") }
      let c = line[i]
      if c == UInt8(ascii: "\"") {
        i += 1
        return start..<scratch.count
      }
      if c != UInt8(ascii: "\\") {
        // copy a run of plain bytes at once
        var j = i + 1
        while j < n && line[j] != UInt8(ascii: "\"") && line[j] != UInt8(ascii: "\\") { j += 1 }
        scratch += line[i..<j]
        i = j
        continue
      }
      let bytes = line
      if let problem = bytes.withUnsafeBufferPointer({ Bytes.decodeJSONEscape($0, &i, to: &scratch) }) {
        throw bad(problem)
      }
    }
  }

  func appendLiteral(_ column: Int, to batch: MyInsertBatcher) {
    scratch.withUnsafeBytes { s in
      switch values[column] {
      case .absent: batch.appendDefault()
      case .null: batch.appendNull()
      case .text(let r): batch.appendText(UnsafeRawBufferPointer(rebasing: s[r]))
      case .binary(let r): batch.appendBinary(UnsafeRawBufferPointer(rebasing: s[r]))
      case .number(let r):
        // only digits, signs, points and exponents: checked when the row was parsed
        batch.statement.append(contentsOf: UnsafeRawBufferPointer(rebasing: s[r]))
      }
    }
  }
}

/// Streams the CSV of one table (RFC 4180, `\n` line ends, header row) into INSERTs. Field kinds
/// by their form: empty unquoted = NULL, quoted = text, `X'…'` = binary, else a number.
final class MyCSVLoader {
  let session: MyRestoreSession
  let table: String
  let run: Bool
  var batch: MyInsertBatcher?
  var header: [String] = []
  var field: [UInt8] = []
  var quoted = false
  var fieldIndex = 0
  enum State { case fieldStart, unquoted, quoted, quoteInQuoted }
  var state = State.fieldStart

  init(session: MyRestoreSession, table: String, run: Bool) {
    self.session = session
    self.table = table
    self.run = run
  }

  func bad(_ what: String) -> BackupError { MyInsertBatcher.corrupt("csv (\(what))", table) }

  func feed(_ chunk: UnsafeRawBufferPointer) throws {
    for c in chunk {
      switch state {
      case .fieldStart:
        if c == 0x22 {
          state = .quoted
          quoted = true
        } else if try !separator(c) {
          field.append(c)
          state = .unquoted
        }
      case .unquoted:
        if try !separator(c) { field.append(c) }
      case .quoted:
        if c == 0x22 { state = .quoteInQuoted } else { field.append(c) }
      case .quoteInQuoted:
        if c == 0x22 {
          field.append(c)
          state = .quoted
        } else if try !separator(c) {
          throw bad("text after a closing quote")
        }
      }
    }
  }

  /// Ends the field (and the row) at `,` or a line end; false for any other byte.
  private func separator(_ c: UInt8) throws -> Bool {
    guard c == 0x2C || c == 0x0A else { return false }
    try endField()
    if c == 0x0A { try endRow() }
    state = .fieldStart
    return true
  }

  func finish() throws {
    guard state == .fieldStart && field.isEmpty && fieldIndex == 0 else {
      throw bad("the last row has no line end")
    }
    guard let batch else { throw bad("no header row") }
    try batch.flush()
  }

  private func endField() throws {
    defer {
      field.removeAll(keepingCapacity: true)
      quoted = false
      fieldIndex += 1
    }
    guard let batch else {
      header.append(String(decoding: field, as: UTF8.self))
      return
    }
    guard fieldIndex < batch.columnCount else { throw bad("more fields than columns") }
    if fieldIndex == 0 { batch.beginRow() } else { batch.appendComma() }
    if quoted {
      field.withUnsafeBytes { batch.appendText($0) }
    } else if field.isEmpty {
      batch.appendNull()
    } else if field.count >= 3 && field[0] == UInt8(ascii: "X") && field[1] == 0x27 && field.last == 0x27 {
      let bytes = try Bytes.decodeHex(field[2..<(field.count - 1)])
      bytes.withUnsafeBytes { batch.appendBinary($0) }
    } else {
      try field.withUnsafeBytes { try batch.appendNumber($0) }
    }
  }

  private func endRow() throws {
    defer { fieldIndex = 0 }
    guard let batch else {
      batch = MyInsertBatcher(session: session, table: table, columns: header, run: run)
      return
    }
    guard fieldIndex == batch.columnCount else {
      throw bad("\(fieldIndex) fields in a row of \(batch.columnCount)")
    }
    try batch.endRow()
  }
}
