import BackupModel
import CSQLite
import Foundation

/// Everything `dump` decided before writing: the tables and the schema objects.
struct DumpPlan {
  var tables: [TableInfo]
  /// Table objects, in creation order, with their SQL.
  var tableObjects: [(SchemaObject, String)]
  /// Indexes, views, triggers and sequences, in creation order, with their statements.
  var postObjects: [(SchemaObject, String)]
  var userVersion: Int64
  var applicationID: Int64

  var objects: [SchemaObject] { tableObjects.map(\.0) + postObjects.map(\.0) }
}

extension SQLiteEngine {
  func checkExists() throws {
    guard FileManager.default.fileExists(atPath: path) else {
      throw BackupError(
        .notFound, "SQLite database \(path) does not exist", hint: "check the --database path")
    }
  }

  func fileSize() -> Int64? {
    (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.int64Value
  }

  /// Opens read-only and starts the one read transaction every read happens in.
  func openSnapshot(lockTimeoutSeconds: Double) throws -> SQLiteConnection {
    try checkExists()
    let db = try SQLiteConnection(path: path, flags: SQLITE_OPEN_READONLY)
    db.setBusyTimeout(seconds: lockTimeoutSeconds)
    // a dump reads each table once, in order: a page cache of 512 KiB (the default is 2 MiB, kept
    // full for the whole dump) holds the b-tree's inner pages, which is all it revisits
    try db.exec("PRAGMA cache_size = -512")
    try db.exec("BEGIN", lockWait: lockTimeoutSeconds)
    try db.checkReadable(lockWait: lockTimeoutSeconds)
    return db
  }

  func makePlan(_ db: SQLiteConnection, tables wanted: [String]?) throws -> DumpPlan {
    let all = try db.userTables()
    var selected = all
    if let wanted {
      let names = Set(all.map(\.name))
      for name in wanted where !names.contains(name) {
        throw BackupError(
          .notFound, "table \"\(name)\" does not exist in \(path)",
          hint: "the database has: \(all.map(\.name).joined(separator: ", "))")
      }
      let set = Set(wanted)
      selected = all.filter { set.contains($0.name) }
    }
    let selectedNames = Set(selected.map(\.name))
    var plan = DumpPlan(
      tables: selected, tableObjects: [], postObjects: [],
      userVersion: try db.pragmaInt("user_version"), applicationID: try db.pragmaInt("application_id"))
    for t in selected {
      plan.tableObjects.append((SchemaObject(type: "table", name: t.name, table: t.name), t.sql + ";"))
    }
    for row in try db.schemaRows() {
      guard let sql = row.sql, !isInternalName(row.name) else { continue }
      switch row.type {
      case "index", "trigger":
        guard selectedNames.contains(row.table) else { continue }
        plan.postObjects.append((SchemaObject(type: row.type, name: row.name, table: row.table), sql + ";"))
      case "view":
        guard wanted == nil else { continue }
        plan.postObjects.append((SchemaObject(type: "view", name: row.name, table: nil), sql + ";"))
      default: continue
      }
    }
    let hasSequence = try db.schemaRows().contains { $0.type == "table" && $0.name == "sqlite_sequence" }
    if hasSequence {
      let s = try db.prepare("SELECT name, seq FROM sqlite_sequence")
      var seqs: [String: Int64] = [:]
      while try s.step() { seqs[s.string(0) ?? ""] = s.int64(1) }
      for t in selected {
        guard let n = seqs[t.name] else { continue }
        let lit = quoteLiteral(t.name)
        let sql =
          "DELETE FROM sqlite_sequence WHERE name=\(lit);\nINSERT INTO sqlite_sequence(name,seq) VALUES(\(lit),\(n));"
        plan.postObjects.append((SchemaObject(type: "sequence", name: t.name, table: t.name), sql))
      }
    }
    return plan
  }

  func schemaScript(_ plan: DumpPlan) -> String {
    let base = (path as NSString).lastPathComponent.replacingOccurrences(of: "\n", with: " ")
      .replacingOccurrences(of: "\r", with: " ")
    var s = "-- ai-shell backup of SQLite database \(base); restore with: sqlite3 new.db < this-file\n"
    s += "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n"
    s += "PRAGMA user_version=\(plan.userVersion);\nPRAGMA application_id=\(plan.applicationID);\n"
    for (o, sql) in plan.tableObjects { s += Bytes.markerPrefix + Bytes.markerJSON(o) + "\n" + sql + "\n" }
    return s
  }

  func postDataScript(_ plan: DumpPlan) -> String {
    var s = ""
    for (o, sql) in plan.postObjects { s += Bytes.markerPrefix + Bytes.markerJSON(o) + "\n" + sql + "\n" }
    return s + "COMMIT;\n"
  }

  func dumpImpl(options: DumpOptions, to sink: PartSink) throws -> DumpResult {
    let db = try openSnapshot(lockTimeoutSeconds: options.lockTimeoutSeconds)
    let plan = try makePlan(db, tables: options.tables)
    let version = String(cString: sqlite3_libversion())
    let out = OutputBuffer(sink: sink)
    let pageSize = try db.pragmaInt("page_size")
    out.afterFlush = { sink.reportSourceProgress(db.bytesRead(pageSize: pageSize)) }
    let mtime = Int64(options.createdAt.timeIntervalSince1970)

    // schema
    try sink.beginPart(kind: .schema, table: nil)
    switch options.format {
    case .sql:
      out.append(schemaScript(plan))
    case .json:
      var line: [UInt8] = []
      line += Array("{\"$backup\":{\"engine\":\"sqlite\",\"format\":\"json\",\"formatVersion\":1}}\n".utf8)
      line += Array("{\"$pragma\":\"user_version\",\"value\":\(plan.userVersion)}\n".utf8)
      line += Array("{\"$pragma\":\"application_id\",\"value\":\(plan.applicationID)}\n".utf8)
      for (o, sql) in plan.tableObjects { appendJSONObjectLine(o, sql, to: &line) }
      out.append(contentsOf: line)
    case .csv:
      let text = Array(schemaScript(plan).utf8)
      out.append(contentsOf: Tar.header(name: "schema.sql", size: Int64(text.count), mtime: mtime))
      out.append(contentsOf: text)
      out.append(contentsOf: [UInt8](repeating: 0, count: Tar.paddingCount(for: Int64(text.count))))
    }
    try out.flush()
    try sink.endPart(rows: nil, contentChecksum: nil)

    // tables
    let reals =
      options.format == .sql ? SQLRealLiterals(check: try db.prepare("SELECT CAST(?1 AS REAL)")) : nil
    for t in plan.tables {
      let columns = try db.columns(of: t.name)
      let scan = try db.prepare(scanSQL(table: t.name, columns: columns, isVirtual: t.isVirtual))
      let nameColumns = try t.isVirtual || db.hasHiddenColumns(t.name)
      let encoder = RowEncoder(
        format: options.format, table: t.name, columns: columns, nameColumns: nameColumns,
        reals: reals)
      try sink.beginPart(kind: .table, table: t.name)
      var checksum = ContentChecksum()
      var row: [UInt8] = []
      row.reserveCapacity(64 * 1024)
      switch options.format {
      case .sql:
        // rows go straight into the output buffer: no copy per row
        while try scan.step() {
          try encoder.encodeSQL(scan, into: &out.bytes, checksum: &checksum)
          try out.flushIfNeeded()
        }
      case .json:
        row.removeAll(keepingCapacity: true)
        encoder.jsonHeader(into: &row)
        out.append(contentsOf: row)
        while try scan.step() {
          encoder.encodeJSON(scan, into: &out.bytes, checksum: &checksum)
          try out.flushIfNeeded()
        }
      case .csv:
        // pass 1 sizes the entry (the tar header needs it first); pass 2 writes
        var header: [UInt8] = []
        encoder.csvHeader(into: &header)
        var size = Int64(header.count)
        var scratch = ContentChecksum()
        while try scan.step() {
          row.removeAll(keepingCapacity: true)
          encoder.encodeCSV(scan, into: &row, checksum: &scratch)
          size += Int64(row.count)
        }
        scan.reset()
        out.append(
          contentsOf: Tar.header(
            name: Tar.entryName(forTable: t.name, suffix: ".csv"), size: size, mtime: mtime))
        out.append(contentsOf: header)
        var written = Int64(header.count)
        while try scan.step() {
          row.removeAll(keepingCapacity: true)
          encoder.encodeCSV(scan, into: &row, checksum: &checksum)
          written += Int64(row.count)
          out.append(contentsOf: row)
          try out.flushIfNeeded()
        }
        guard written == size else {
          throw BackupError(.database, "table \"\(t.name)\" changed between the two csv passes")
        }
        out.append(contentsOf: [UInt8](repeating: 0, count: Tar.paddingCount(for: size)))
      }
      try out.flush()
      try sink.endPart(rows: checksum.rows, contentChecksum: checksum.finalizeHex())
    }

    // post-data
    try sink.beginPart(kind: .postData, table: nil)
    switch options.format {
    case .sql:
      out.append(postDataScript(plan))
    case .json:
      var line: [UInt8] = []
      for (o, sql) in plan.postObjects { appendJSONObjectLine(o, sql, to: &line) }
      out.append(contentsOf: line)
    case .csv:
      let text = Array(postDataScript(plan).utf8)
      out.append(contentsOf: Tar.header(name: "post-data.sql", size: Int64(text.count), mtime: mtime))
      out.append(contentsOf: text)
      out.append(contentsOf: [UInt8](repeating: 0, count: Tar.paddingCount(for: Int64(text.count))))
      out.append(contentsOf: Tar.endOfArchive)
    }
    try out.flush()
    try sink.endPart(rows: nil, contentChecksum: nil)
    try? db.exec("COMMIT")
    return DumpResult(serverVersion: version, sizeBytes: fileSize(), objects: plan.objects)
  }

  func appendJSONObjectLine(_ o: SchemaObject, _ sql: String, to line: inout [UInt8]) {
    line += Array("{\"$object\":\(Bytes.markerJSON(o)),\"sql\":".utf8)
    Bytes.appendJSONString(sql, to: &line)
    line += Array("}\n".utf8)
  }

  /// Rows and checksum of each table, scanned exactly as `dump` scans it.
  func tableStatsImpl(_ tables: [String]) throws -> [String: TableStats] {
    let db = try openSnapshot(lockTimeoutSeconds: 10)
    let types = try db.tableListTypes()
    var out: [String: TableStats] = [:]
    for name in tables {
      guard let type = types[name], type == "table" || type == "virtual" else {
        throw BackupError(.notFound, "table \"\(name)\" does not exist in \(path)")
      }
      let columns = try db.columns(of: name)
      let scan = try db.prepare(scanSQL(table: name, columns: columns, isVirtual: type == "virtual"))
      var checksum = ContentChecksum()
      let n = Int32(columns.count)
      while try scan.step() {
        for i in 0..<n { addValue(scan, i, to: &checksum) }
        checksum.endRow()
      }
      out[name] = TableStats(rows: checksum.rows, contentChecksum: checksum.finalizeHex())
    }
    try? db.exec("COMMIT")
    return out
  }
}

@inline(__always) func addValue(_ s: Statement, _ i: Int32, to checksum: inout ContentChecksum) {
  switch s.type(i) {
  case SQLITE_INTEGER: checksum.addInteger(s.int64(i))
  case SQLITE_FLOAT: checksum.addReal(s.double(i))
  case SQLITE_TEXT: checksum.addText(s.textBytes(i))
  case SQLITE_BLOB: checksum.addBlob(s.blobBytes(i))
  default: checksum.addNull()
  }
}

/// Formats one row of one table in one format, feeding the content checksum on the way.
struct RowEncoder {
  let format: DumpFormat
  let columns: [ColumnInfo]
  let count: Int32
  /// sql: `INSERT INTO "t"("a","b") VALUES(`
  let insertPrefix: [UInt8]
  /// json: `"a":` then `,"b":` ...
  let jsonKeys: [[UInt8]]
  let table: String
  let reals: SQLRealLiterals?

  /// `nameColumns`: write the column list in every INSERT (needed when generated columns exist;
  /// otherwise left out, as `sqlite3 .dump` does, which keeps the file smaller).
  init(format: DumpFormat, table: String, columns: [ColumnInfo], nameColumns: Bool, reals: SQLRealLiterals?) {
    self.format = format
    self.columns = columns
    self.table = table
    self.reals = reals
    count = Int32(columns.count)
    let cols = columns.map { quoteIdentifier($0.name) }.joined(separator: ",")
    insertPrefix = Array(
      "INSERT INTO \(quoteIdentifier(table))\(nameColumns ? "(\(cols))" : "") VALUES(".utf8)
    jsonKeys = columns.enumerated().map { i, c in
      var k: [UInt8] = i == 0 ? [] : [UInt8(ascii: ",")]
      Bytes.appendJSONString(c.name, to: &k)
      k.append(UInt8(ascii: ":"))
      return k
    }
  }

  func encodeSQL(_ s: Statement, into row: inout [UInt8], checksum: inout ContentChecksum) throws {
    row.append(contentsOf: insertPrefix)
    for i in 0..<count {
      if i > 0 { row.append(UInt8(ascii: ",")) }
      switch s.type(i) {
      case SQLITE_INTEGER:
        let v = s.int64(i)
        checksum.addInteger(v)
        Bytes.appendDecimal(v, to: &row)
      case SQLITE_FLOAT:
        let v = s.double(i)
        checksum.addReal(v)
        row.append(contentsOf: sqlReal(v).utf8)
      case SQLITE_TEXT:
        let b = s.textBytes(i)
        checksum.addText(b)
        if b.contains(0) || b.contains(0x0D) {
          // the sqlite3 shell drops a CR before a line end, and NUL ends SQL text: go by hex
          row.append(contentsOf: "CAST(X'".utf8)
          Bytes.appendHex(b, to: &row)
          row.append(contentsOf: "' AS TEXT)".utf8)
        } else {
          row.append(UInt8(ascii: "'"))
          var start = 0
          for (k, c) in b.enumerated() where c == UInt8(ascii: "'") {
            row.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[start...k]))
            row.append(UInt8(ascii: "'"))
            start = k + 1
          }
          row.append(contentsOf: UnsafeRawBufferPointer(rebasing: b[start..<b.count]))
          row.append(UInt8(ascii: "'"))
        }
      case SQLITE_BLOB:
        let b = s.blobBytes(i)
        checksum.addBlob(b)
        row.append(contentsOf: "X'".utf8)
        Bytes.appendHex(b, to: &row)
        row.append(UInt8(ascii: "'"))
      default:
        checksum.addNull()
        row.append(contentsOf: "NULL".utf8)
      }
    }
    row.append(contentsOf: ");\n".utf8)
    checksum.endRow()
  }

  func sqlReal(_ v: Double) -> String {
    reals?.literal(v) ?? SQLiteEngine.exactRealExpression(v)
  }

  func jsonHeader(into row: inout [UInt8]) {
    row.append(contentsOf: "{\"$table\":".utf8)
    Bytes.appendJSONString(table, to: &row)
    row.append(contentsOf: ",\"columns\":[".utf8)
    for (i, c) in columns.enumerated() {
      if i > 0 { row.append(UInt8(ascii: ",")) }
      row.append(contentsOf: "{\"name\":".utf8)
      Bytes.appendJSONString(c.name, to: &row)
      row.append(contentsOf: ",\"type\":".utf8)
      Bytes.appendJSONString(c.type, to: &row)
      row.append(UInt8(ascii: "}"))
    }
    row.append(contentsOf: "]}\n".utf8)
  }

  func encodeJSON(_ s: Statement, into row: inout [UInt8], checksum: inout ContentChecksum) {
    row.append(UInt8(ascii: "{"))
    for i in 0..<count {
      row.append(contentsOf: jsonKeys[Int(i)])
      switch s.type(i) {
      case SQLITE_INTEGER:
        let v = s.int64(i)
        checksum.addInteger(v)
        Bytes.appendDecimal(v, to: &row)
      case SQLITE_FLOAT:
        let v = s.double(i)
        checksum.addReal(v)
        if v.isInfinite {
          row.append(contentsOf: (v < 0 ? "{\"$real\":\"-Infinity\"}" : "{\"$real\":\"Infinity\"}").utf8)
        } else {
          row.append(contentsOf: Bytes.realText(v).utf8)
        }
      case SQLITE_TEXT:
        let b = s.textBytes(i)
        checksum.addText(b)
        if Bytes.isValidUTF8(b) {
          row.append(UInt8(ascii: "\""))
          Bytes.appendJSONEscaped(b, to: &row)
          row.append(UInt8(ascii: "\""))
        } else {
          row.append(contentsOf: "{\"$text64\":\"".utf8)
          Bytes.appendBase64(b, to: &row)
          row.append(contentsOf: "\"}".utf8)
        }
      case SQLITE_BLOB:
        let b = s.blobBytes(i)
        checksum.addBlob(b)
        row.append(contentsOf: "{\"$base64\":\"".utf8)
        Bytes.appendBase64(b, to: &row)
        row.append(contentsOf: "\"}".utf8)
      default:
        checksum.addNull()
        row.append(contentsOf: "null".utf8)
      }
    }
    row.append(contentsOf: "}\n".utf8)
    checksum.endRow()
  }

  func csvHeader(into row: inout [UInt8]) {
    Bytes.appendCSVHeader(columns.map(\.name), to: &row)
  }

  func appendCSVQuoted(_ b: UnsafeRawBufferPointer, to row: inout [UInt8]) {
    Bytes.appendCSVQuoted(b, to: &row)
  }

  func encodeCSV(_ s: Statement, into row: inout [UInt8], checksum: inout ContentChecksum) {
    for i in 0..<count {
      if i > 0 { row.append(UInt8(ascii: ",")) }
      switch s.type(i) {
      case SQLITE_INTEGER:
        let v = s.int64(i)
        checksum.addInteger(v)
        Bytes.appendDecimal(v, to: &row)
      case SQLITE_FLOAT:
        let v = s.double(i)
        checksum.addReal(v)
        if v.isInfinite {
          row.append(contentsOf: (v < 0 ? "-Inf" : "Inf").utf8)
        } else {
          row.append(contentsOf: Bytes.realText(v).utf8)
        }
      case SQLITE_TEXT:
        let b = s.textBytes(i)
        checksum.addText(b)
        appendCSVQuoted(b, to: &row)
      case SQLITE_BLOB:
        let b = s.blobBytes(i)
        checksum.addBlob(b)
        row.append(contentsOf: "X'".utf8)
        Bytes.appendHex(b, to: &row)
        row.append(UInt8(ascii: "'"))
      default:
        checksum.addNull()
      }
    }
    row.append(0x0A)
    checksum.endRow()
  }
}

extension SQLiteEngine {
  /// `(m*2^k)` spelled with integer-valued REAL literals SQLite reads exactly; every step of
  /// the product is exact because the result is representable.
  static func exactRealExpression(_ v: Double) -> String {
    if v == 0 { return v.sign == .minus ? "-0.0" : "0.0" }
    let magnitude = v.magnitude
    var m = Int64(magnitude.significand * 4_503_599_627_370_496)  // 2^52
    var e = Int(magnitude.exponent) - 52
    while m & 1 == 0 {
      m >>= 1
      e += 1
    }
    var s = "(" + (v < 0 ? "-" : "") + String(m) + ".0"
    let op = e < 0 ? "/" : "*"
    var left = abs(e)
    while left > 0 {
      let step = min(left, 60)
      s += op + String(Int64(1) << Int64(step)) + ".0"
      left -= step
    }
    return s + ")"
  }
}

/// REAL literals for the sql format. SQLite before 3.43 does not always round decimal text
/// correctly, so the shortest form of each double is checked with SQLite's own reader and, when
/// it does not read back bit for bit, replaced by an exact expression. The answer depends only on
/// the double, so it is remembered: columns repeat values, and the check costs a statement step.
final class SQLRealLiterals {
  private let check: Statement
  private var known: [UInt64: Bool] = [:]

  init(check: Statement) { self.check = check }

  func literal(_ v: Double) -> String {
    if v.isInfinite { return v < 0 ? "-1e999" : "1e999" }
    let text = Bytes.realText(v)
    let exact: Bool
    if let answer = known[v.bitPattern] {
      exact = answer
    } else {
      check.reset()
      check.bind(1, text)
      exact =
        (try? check.step()) == true && check.type(0) == SQLITE_FLOAT
        && check.double(0).bitPattern == v.bitPattern
      if known.count >= 1 << 16 { known.removeAll(keepingCapacity: true) }
      known[v.bitPattern] = exact
    }
    return exact ? text : SQLiteEngine.exactRealExpression(v)
  }
}
