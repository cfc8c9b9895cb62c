import BackupModel
import Foundation

/// Writes one table part in one format from one connection's snapshot: rows stream from the
/// server (`mysql_use_result`) into the part, never a whole table in memory.
struct MyTableWriter: Sendable {
  let table: MyTable
  /// Every column of the table, in ordinal order (generated ones are left out of the dump).
  let columns: [MyColumn]
  let format: DumpFormat
  let mtime: Int64

  var dumped: [MyColumn] { columns.filter { !$0.generated } }

  var select: String { mySelect(table.name, columns) }

  func write(_ db: MyConnection, to sink: PartSink) throws {
    do {
      try writePart(db, to: sink)
    } catch let e as BackupError where e.status == .database {
      // name the table: "SELECT command denied" or a lost connection says which one failed
      let denied = e.message.contains("command denied")
      throw BackupError(
        .database, "cannot dump table \"\(table.name)\": \(e.message)",
        hint: denied ? "grant the backup user SELECT on it, or leave it out with --tables" : e.hint)
    }
  }

  func writePart(_ db: MyConnection, to sink: PartSink) throws {
    let out = OutputBuffer(sink: sink)
    try sink.beginPart(kind: .table, table: table.name)
    var checksum = MyRowChecksum()
    switch format {
    case .sql: try writeSQL(db, out, &checksum)
    case .json: try writeJSON(db, out, &checksum)
    case .csv: try writeCSV(db, out, &checksum)
    }
    try out.flush()
    try sink.endPart(rows: checksum.rows, contentChecksum: checksum.finalizeHex())
  }

  /// Batched multi-row INSERTs of about 1 MiB, one statement per line.
  func writeSQL(_ db: MyConnection, _ out: OutputBuffer, _ checksum: inout MyRowChecksum) throws {
    let needsList = columns.contains { $0.generated || $0.invisible }
    let list = dumped.map { myIdent($0.name) }.joined(separator: ", ")
    let prefix = Array(
      ("INSERT INTO \(myIdent(table.name))" + (needsList ? " (\(list))" : "") + " VALUES ").utf8)
    out.append(
      Bytes.markerPrefix + Bytes.markerJSON(SchemaObject(type: "data", name: table.name, table: table.name))
        + "\n")
    var kinds: [MyField.Kind] = []
    var statementBytes = 0
    var open = false
    try db.stream(select, fields: { kinds = $0.map(\.kind) }) { row, lengths, n in
      checksum.add(row, lengths: lengths, count: n)
      let before = out.bytes.count
      if open {
        out.append(UInt8(ascii: ","))
      } else {
        out.append(contentsOf: prefix)
        open = true
      }
      out.append(UInt8(ascii: "("))
      for i in 0..<n {
        if i > 0 { out.append(UInt8(ascii: ",")) }
        guard let p = row[i] else {
          out.append("NULL")
          continue
        }
        MySQLValue.append(UnsafeRawBufferPointer(start: p, count: Int(lengths[i])), kind: kinds[i], to: out)
      }
      out.append(UInt8(ascii: ")"))
      statementBytes += out.bytes.count - before
      if statementBytes >= 1 << 20 {
        out.append(";\n")
        open = false
        statementBytes = 0
      }
      try out.flushIfNeeded()
    }
    if open { out.append(";\n") }
  }

  /// NDJSON: a `$table` header with the columns and their types, then one object per row.
  func writeJSON(_ db: MyConnection, _ out: OutputBuffer, _ checksum: inout MyRowChecksum) throws {
    out.append("{\"$table\":")
    Bytes.appendJSONString(table.name, to: &out.bytes)
    out.append(",\"columns\":[")
    for (i, c) in dumped.enumerated() {
      if i > 0 { out.append(UInt8(ascii: ",")) }
      out.append("{\"name\":")
      Bytes.appendJSONString(c.name, to: &out.bytes)
      out.append(",\"type\":")
      Bytes.appendJSONString(c.type, to: &out.bytes)
      out.append(UInt8(ascii: "}"))
    }
    out.append("]}\n")
    let keys: [[UInt8]] = dumped.enumerated().map { i, c in
      var k: [UInt8] = i == 0 ? [] : [UInt8(ascii: ",")]
      Bytes.appendJSONString(c.name, to: &k)
      k.append(UInt8(ascii: ":"))
      return k
    }
    var kinds: [MyField.Kind] = []
    try db.stream(select, fields: { kinds = $0.map(\.kind) }) { row, lengths, n in
      checksum.add(row, lengths: lengths, count: n)
      out.append(UInt8(ascii: "{"))
      for i in 0..<n {
        out.append(contentsOf: keys[i])
        guard let p = row[i] else {
          out.append("null")
          continue
        }
        MyFormatValue.appendJSON(
          UnsafeRawBufferPointer(start: p, count: Int(lengths[i])), kind: kinds[i], to: &out.bytes)
      }
      out.append("}\n")
      try out.flushIfNeeded()
    }
  }

  /// One tar entry `<table>.csv`. Its header needs the size first, so the table is read twice in
  /// the same snapshot: once to count the bytes, once to write them.
  func writeCSV(_ db: MyConnection, _ out: OutputBuffer, _ checksum: inout MyRowChecksum) throws {
    var header: [UInt8] = []
    Bytes.appendCSVHeader(dumped.map(\.name), to: &header)
    var size = Int64(header.count)
    var row: [UInt8] = []
    var kinds: [MyField.Kind] = []
    try db.stream(select, fields: { kinds = $0.map(\.kind) }) { r, lengths, n in
      row.removeAll(keepingCapacity: true)
      MyFormatValue.appendCSVRow(r, lengths: lengths, count: n, kinds: kinds, to: &row)
      size += Int64(row.count)
    }
    out.append(
      contentsOf: Tar.header(
        name: Tar.entryName(forTable: table.name, suffix: ".csv"), size: size, mtime: mtime))
    out.append(contentsOf: header)
    var written = Int64(header.count)
    try db.stream(select) { r, lengths, n in
      checksum.add(r, lengths: lengths, count: n)
      let before = out.bytes.count
      MyFormatValue.appendCSVRow(r, lengths: lengths, count: n, kinds: kinds, to: &out.bytes)
      written += Int64(out.bytes.count - before)
      try out.flushIfNeeded()
    }
    guard written == size else {
      throw BackupError(
        .database,
        "table \"\(table.name)\" changed between the two csv passes (a non-transactional table written during the backup?)"
      )
    }
    out.append(contentsOf: [UInt8](repeating: 0, count: Tar.paddingCount(for: size)))
  }
}

/// How values are written in the json and csv formats (docs/FORMAT.md, MySQL/MariaDB).
enum MyFormatValue {
  /// BIT(n) values arrive as big-endian bytes: written as their unsigned decimal value.
  static func appendBits(_ v: UnsafeRawBufferPointer, to out: inout [UInt8]) {
    var n: UInt64 = 0
    for b in v { n = n << 8 | UInt64(b) }
    out.append(contentsOf: String(n).utf8)
  }

  static func appendJSON(_ v: UnsafeRawBufferPointer, kind: MyField.Kind, to out: inout [UInt8]) {
    switch kind {
    case .number:
      // YEAR `0000` and ZEROFILL columns come with leading zeros, which JSON numbers may not have
      var start = 0
      while start + 1 < v.count && v[start] == 0x30 && v[start + 1] >= 0x30 && v[start + 1] <= 0x39 {
        start += 1
      }
      out.append(contentsOf: UnsafeRawBufferPointer(rebasing: v[start...]))
    case .bit:
      appendBits(v, to: &out)
    case .binary:
      out.append(contentsOf: "{\"$base64\":\"".utf8)
      Bytes.appendBase64(v, to: &out)
      out.append(contentsOf: "\"}".utf8)
    case .text:
      if Bytes.isValidUTF8(v) {
        out.append(UInt8(ascii: "\""))
        Bytes.appendJSONEscaped(v, to: &out)
        out.append(UInt8(ascii: "\""))
      } else {
        out.append(contentsOf: "{\"$text64\":\"".utf8)
        Bytes.appendBase64(v, to: &out)
        out.append(contentsOf: "\"}".utf8)
      }
    }
  }

  /// NULL is an empty unquoted field; text (dates, JSON, ENUM/SET too) always double-quoted;
  /// numbers and BIT unquoted; binary strings unquoted `X'hex'`.
  static func appendCSVRow(
    _ row: MYSQLRow, lengths: UnsafeMutablePointer<UInt>, count n: Int, kinds: [MyField.Kind],
    to out: inout [UInt8]
  ) {
    for i in 0..<n {
      if i > 0 { out.append(UInt8(ascii: ",")) }
      guard let p = row[i] else { continue }
      let v = UnsafeRawBufferPointer(start: p, count: Int(lengths[i]))
      switch kinds[i] {
      case .number: out.append(contentsOf: v)
      case .bit: appendBits(v, to: &out)
      case .binary:
        out.append(contentsOf: "X'".utf8)
        Bytes.appendHex(v, to: &out)
        out.append(UInt8(ascii: "'"))
      case .text: Bytes.appendCSVQuoted(v, to: &out)
      }
    }
    out.append(0x0A)
  }
}
