import BackupModel
import Foundation

/// A table or view of the dumped database, as information_schema describes it.
struct MyTable {
  var name: String
  var type: String
  var engine: String?
  var isBaseTable: Bool { type == "BASE TABLE" || type == "SYSTEM VERSIONED" }
  var isView: Bool { type == "VIEW" }
  /// A MariaDB 10.3+ `CREATE SEQUENCE` object.
  var isSequence: Bool { type == "SEQUENCE" }
  /// Rows read inside `START TRANSACTION WITH CONSISTENT SNAPSHOT` are from the snapshot only for
  /// these engines; others (MyISAM, Aria, MEMORY, …) are consistent only under the read lock.
  var isTransactional: Bool {
    ["innodb", "rocksdb", "tokudb"].contains((engine ?? "").lowercased())
  }
}

struct MyColumn {
  var name: String
  /// `COLUMN_TYPE` (e.g. `decimal(65,30)`, `enum('a','b')`): the json header's column types.
  var type: String
  var generated: Bool
  var invisible: Bool

  /// What a dump reads for the column: the column, but a FLOAT as the DOUBLE that holds it
  /// exactly. The server writes a FLOAT with 6 significant digits, which does not round-trip
  /// (3.4028235e38 would come back as 3.40282e38); the DOUBLE's digits restore the same FLOAT.
  var selected: String {
    type.lowercased().hasPrefix("float")
      ? "CAST(\(myIdent(name)) AS DOUBLE) AS \(myIdent(name))" : myIdent(name)
  }
}

/// The SELECT of a table's dumped (stored, not generated) columns: the dump and `tableStats`
/// read the same values, so their content checksums agree.
func mySelect(_ table: String, _ columns: [MyColumn]) -> String {
  "SELECT \(columns.filter { !$0.generated }.map(\.selected).joined(separator: ", ")) FROM \(myIdent(table))"
}

extension MyConnection {
  func catalogTables() throws -> [MyTable] {
    try query(
      """
      SELECT TABLE_NAME, TABLE_TYPE, ENGINE FROM information_schema.TABLES
      WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME
      """
    ).map { MyTable(name: $0[0] ?? "", type: $0[1] ?? "", engine: $0[2]) }
  }

  /// Columns per table, in ordinal order.
  func catalogColumns() throws -> [String: [MyColumn]] {
    var out: [String: [MyColumn]] = [:]
    for r in try query(
      """
      SELECT TABLE_NAME, COLUMN_NAME, EXTRA, COLUMN_TYPE FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION
      """)
    {
      let extra = (r[2] ?? "").uppercased()
      out[r[0] ?? "", default: []].append(
        MyColumn(
          name: r[1] ?? "", type: r[3] ?? "", generated: extra.contains("GENERATED"),
          invisible: extra.contains("INVISIBLE")))
    }
    return out
  }

  /// The `Create …` column of a `SHOW CREATE …` statement, with the row's other columns.
  func showCreate(_ what: String, _ name: String) throws -> [String: String] {
    var result: [String: String] = [:]
    var names: [String] = []
    try stream(
      "SHOW CREATE \(what) \(myIdent(name))", fields: { names = $0.map(\.name) }
    ) { row, lengths, n in
      for i in 0..<n {
        if let p = row[i] {
          result[names[i]] = String(
            decoding: UnsafeRawBufferPointer(start: p, count: Int(lengths[i])), as: UTF8.self)
        }
      }
    }
    return result
  }

  /// A sequence's `CREATE SEQUENCE` statement and the statement that sets its next value, as
  /// `mariadb-dump` takes them: the value is `next_not_cached_value` (the next value a restarted
  /// server would hand out; exactly the next value for a sequence created with `NOCACHE`).
  func sequenceDefinition(_ name: String) throws -> (create: String, setval: String) {
    let create = try showCreate("SEQUENCE", name)["Create Table"] ?? ""
    guard let next = try query("SELECT next_not_cached_value FROM \(myIdent(name))").first?.first ?? nil,
      next.allSatisfy({ $0.isNumber || $0 == "-" })
    else {
      throw BackupError(.database, "cannot read the value of sequence \"\(name)\" at \(endpoint)")
    }
    return (create + ";\n\n", "DO SETVAL(\(myIdent(name)), \(next), 0);\n\n")
  }
}

/// The content checksum of one MySQL/MariaDB table (docs/FORMAT.md): independent of row order.
/// Each row's canonical form (per dumped column: `N` for NULL, or `V`, the length as 8 bytes
/// little-endian and the value's text as the server sends it under the fixed session settings)
/// goes through the order-independent sum of `RowSetChecksum`.
struct MyRowChecksum {
  var inner = RowSetChecksum()
  var buffer: [UInt8] = []

  init() { inner.domain = "ai-shell-mysql-rows-v2" }

  var rows: Int64 { inner.rows }

  mutating func add(_ row: MYSQLRow, lengths: UnsafeMutablePointer<UInt>, count: Int) {
    buffer.removeAll(keepingCapacity: true)
    for i in 0..<count {
      if let p = row[i] {
        buffer.append(UInt8(ascii: "V"))
        var n = UInt64(lengths[i]).littleEndian
        withUnsafeBytes(of: &n) { buffer.append(contentsOf: $0) }
        buffer.append(contentsOf: UnsafeRawBufferPointer(start: p, count: Int(lengths[i])))
      } else {
        buffer.append(UInt8(ascii: "N"))
      }
    }
    buffer.withUnsafeBytes { inner.add($0) }
  }

  func finalizeHex() -> String { inner.finalizeHex() }
}

typealias MYSQLRow = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

/// Removes `DEFINER=user@host` from a SHOW CREATE statement (the restoring user becomes the
/// definer, as a restore by another user could not create it otherwise).
func stripDefiner(_ sql: String) -> String {
  guard let r = sql.range(of: "DEFINER="), sql.distance(from: sql.startIndex, to: r.lowerBound) < 200 else {
    return sql
  }
  var i = r.upperBound
  func skipPart() {
    if i < sql.endIndex && sql[i] == "`" {
      i = sql.index(after: i)
      while i < sql.endIndex {
        if sql[i] == "`" {
          let next = sql.index(after: i)
          if next < sql.endIndex && sql[next] == "`" {
            i = sql.index(after: next)
            continue
          }
          i = next
          return
        }
        i = sql.index(after: i)
      }
    } else {
      while i < sql.endIndex && sql[i] != "@" && sql[i] != " " { i = sql.index(after: i) }
    }
  }
  skipPart()
  if i < sql.endIndex && sql[i] == "@" {
    i = sql.index(after: i)
    skipPart()
  }
  while i < sql.endIndex && sql[i] == " " { i = sql.index(after: i) }
  return String(sql[..<r.lowerBound]) + String(sql[i...])
}

/// A schema or post-data part: objects with their statements, laid out per format. In sql it is
/// the script itself (object marker, statements); in csv the same script is one tar entry; in json
/// each object is a line `{"$object":{…},"sql":"…"}` whose `sql` is the text that follows the
/// marker in the sql format (so a restore rebuilds the same script).
struct MyScriptPart {
  var header: String
  var objects: [(SchemaObject, String)]
  var footer: String

  var sqlText: String {
    var s = header
    for (o, sql) in objects { s += Bytes.markerPrefix + Bytes.markerJSON(o) + "\n" + sql }
    return s + footer
  }

  func write(
    format: DumpFormat, tarName: String, jsonFirstLine: String? = nil, endOfArchive: Bool = false,
    mtime: Int64,
    to out: OutputBuffer
  ) {
    switch format {
    case .sql:
      out.append(sqlText)
    case .csv:
      let text = Array(sqlText.utf8)
      out.append(contentsOf: Tar.header(name: tarName, size: Int64(text.count), mtime: mtime))
      out.append(contentsOf: text)
      out.append(contentsOf: [UInt8](repeating: 0, count: Tar.paddingCount(for: Int64(text.count))))
      if endOfArchive { out.append(contentsOf: Tar.endOfArchive) }
    case .json:
      if let l = jsonFirstLine { out.append(l) }
      for (o, sql) in objects {
        out.append("{\"$object\":" + Bytes.markerJSON(o) + ",\"sql\":")
        Bytes.appendJSONString(sql, to: &out.bytes)
        out.append("}\n")
      }
    }
  }
}

extension MariaDBEngine {
  static let schemaHeader = """
    SET NAMES utf8mb4;
    SET TIME_ZONE='+00:00';
    SET FOREIGN_KEY_CHECKS=0;
    SET UNIQUE_CHECKS=0;
    SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO';
    SET SQL_NOTES=0;

    """

  /// Opens a dump connection: fixed session settings and the lock wait of `options`.
  func dumpConnection(_ options: DumpOptions) throws -> MyConnection {
    let db = try connect()
    try db.setStableSession()
    let lockSeconds = max(1, Int(options.lockTimeoutSeconds.rounded(.up)))
    try db.exec("SET SESSION lock_wait_timeout = \(lockSeconds)")
    return db
  }

  func dumpImpl(options: DumpOptions, to sink: PartSink) throws -> DumpResult {
    let dbName = try databaseName
    let db = try dumpConnection(options)
    // --jobs N: N more connections (opened before the lock, so that it stays brief)
    let workers = options.jobs > 1 ? try (0..<options.jobs).map { _ in try dumpConnection(options) } : []
    let serverVersion = db.serverVersion
    var warnings: [String] = []
    let mtime = Int64(options.createdAt.timeIntervalSince1970)

    // one snapshot for every table and every connection: a brief global read lock, the
    // snapshots, the binlog position
    do {
      try db.exec("FLUSH TABLES WITH READ LOCK")
    } catch let e as BackupError {
      throw BackupError(
        .database, e.message,
        hint: "the backup user needs the RELOAD privilege; a long-running statement can also block the lock")
    }
    var locked = true
    defer { if locked { try? db.exec("UNLOCK TABLES") } }
    for c in [db] + workers {
      try c.exec("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
      try c.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT")
    }
    var position: Manifest.ReplicationPosition?
    if let r = try db.query("SHOW MASTER STATUS").first, let file = r.first ?? nil,
      let pos = r.count > 1 ? r[1].flatMap({ Int64($0) }) : nil
    {
      var gtid = try? db.query("SELECT @@GLOBAL.gtid_binlog_pos").first?.first ?? nil
      if gtid == nil { gtid = try? db.query("SELECT @@GLOBAL.gtid_executed").first?.first ?? nil }
      position = .init(
        binlogFile: file, binlogPosition: pos, gtid: gtid.flatMap { $0.isEmpty ? nil : $0 })
    }
    let size = try db.query(
      "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
    ).first?.first??.split(separator: ".").first.flatMap { Int64($0) }
    // the database's default character set and collation, which a restore that creates its
    // target gives it (recorded as the manifest's database.creation: encoding and collations)
    let creation = try db.query(
      "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()"
    ).first.flatMap { r -> Manifest.DatabaseCreation? in
      guard let cs = r[0], let co = r[1] else { return nil }
      return Manifest.DatabaseCreation(encoding: cs, lcCollate: co, lcCtype: co)
    }
    let all = try db.catalogTables()
    var tables = all.filter(\.isBaseTable)
    let selective = options.tables != nil
    if let wanted = options.tables {
      let byName = Dictionary(tables.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
      tables = try wanted.map { w in
        guard let t = byName[w] else {
          throw BackupError(
            .notFound, "table \"\(w)\" does not exist in MySQL/MariaDB database \(db.endpoint)",
            hint: "the database has: "
              + all.filter(\.isBaseTable).prefix(20).map(\.name).joined(separator: ", "))
        }
        return t
      }
      tables.sort { $0.name < $1.name }
    }
    let columns = try db.catalogColumns()
    let views = selective ? [] : all.filter(\.isView)
    let sequences = selective ? [] : all.filter(\.isSequence)
    for t in all where !t.isBaseTable && !t.isView && !t.isSequence {
      warnings.append("\(t.type.lowercased()) \"\(t.name)\" is not backed up (not supported yet)")
    }
    let nonTransactional = tables.filter { !$0.isTransactional }
    if !nonTransactional.isEmpty {
      warnings.append(
        "table\(nonTransactional.count == 1 ? "" : "s") "
          + nonTransactional.prefix(10).map { "\"\($0.name)\" (\($0.engine ?? "?"))" }.joined(separator: ", ")
          + " \(nonTransactional.count == 1 ? "is" : "are") not transactional: the global read lock is held until \(nonTransactional.count == 1 ? "it is" : "they are") dumped, blocking writers"
      )
    }
    let lastLocked = tables.lastIndex { !$0.isTransactional }

    // schema: session settings, sequences, then every table's CREATE TABLE (read under the lock)
    var schema = MyScriptPart(
      header: "-- ai-shell backup of MySQL/MariaDB database \(oneLine(dbName)) (server \(serverVersion))\n"
        + "-- restore with: mariadb newdb < this-file (after decompressing)\n", objects: [], footer: "")
    if let p = position {
      schema.header +=
        "-- binary log position: \(p.binlogFile):\(p.binlogPosition)\(p.gtid.map { " gtid \($0)" } ?? "")\n"
    }
    schema.header += MariaDBEngine.schemaHeader
    var sequenceValues: [(SchemaObject, String)] = []
    for s in sequences {
      let (create, setval) = try db.sequenceDefinition(s.name)
      schema.objects.append((SchemaObject(type: "sequence", name: s.name, table: nil), create))
      sequenceValues.append((SchemaObject(type: "sequence set", name: s.name, table: nil), setval))
    }
    for t in tables {
      let create = try db.showCreate("TABLE", t.name)["Create Table"] ?? ""
      schema.objects.append((SchemaObject(type: "table", name: t.name, table: t.name), create + ";\n\n"))
    }
    let out = OutputBuffer(sink: sink)
    try sink.beginPart(kind: .schema, table: nil)
    schema.write(
      format: options.format, tarName: "schema.sql",
      jsonFirstLine: "{\"$backup\":{\"engine\":\"mysql\",\"format\":\"json\",\"formatVersion\":1}}\n",
      mtime: mtime, to: out)
    try out.flush()
    try sink.endPart(rows: nil, contentChecksum: nil)
    let unlock = {
      try db.exec("UNLOCK TABLES")
      locked = false
    }
    if lastLocked == nil { try unlock() }

    // one part per table, streamed; with --jobs, read by the workers and written in order here
    let writers = tables.map {
      MyTableWriter(table: $0, columns: columns[$0.name] ?? [], format: options.format, mtime: mtime)
    }
    let tableWritten = { (index: Int) throws in
      if locked, let last = lastLocked, index >= last { try unlock() }
    }
    if workers.isEmpty {
      for (index, w) in writers.enumerated() {
        try w.write(db, to: sink)
        try tableWritten(index)
      }
    } else {
      try MyParallelDump(writers: writers, connections: workers).run(to: sink, written: tableWritten)
    }

    // post-data: sequence values, routines, views, triggers, events (in the snapshot where the
    // server allows)
    var post = MyScriptPart(
      header: "", objects: sequenceValues, footer: "SET FOREIGN_KEY_CHECKS=1;\nSET UNIQUE_CHECKS=1;\n")
    if options.format == .json { post.footer = "" }
    if !selective {
      for r in try db.query(
        "SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY ROUTINE_TYPE, ROUTINE_NAME"
      ) {
        guard let name = r[0], let type = r[1], type == "PROCEDURE" || type == "FUNCTION" else { continue }
        let c = try db.showCreate(type, name)
        guard let sql = c["Create \(type == "PROCEDURE" ? "Procedure" : "Function")"] else {
          warnings.append("\(type.lowercased()) \"\(name)\": no definition visible (missing privilege?)")
          continue
        }
        post.objects.append(
          (
            SchemaObject(type: type.lowercased(), name: name, table: nil),
            routineText(stripDefiner(sql), sqlMode: c["sql_mode"])
          ))
      }
    }
    for v in orderViews(views, definitions: try views.map { try db.showCreate("VIEW", $0.name) }) {
      post.objects.append(
        (SchemaObject(type: "view", name: v.name, table: nil), stripDefiner(v.sql) + ";\n\n"))
    }
    let wanted = Set(tables.map(\.name))
    for r in try db.query(
      "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER"
    ) {
      guard let name = r[0], let table = r[1], wanted.contains(table) else { continue }
      let c = try db.showCreate("TRIGGER", name)
      guard let sql = c["SQL Original Statement"] else { continue }
      post.objects.append(
        (
          SchemaObject(type: "trigger", name: name, table: table),
          routineText(stripDefiner(sql), sqlMode: c["sql_mode"])
        ))
    }
    if !selective {
      for r in try db.query(
        "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE() ORDER BY EVENT_NAME"
      ) {
        guard let name = r[0] else { continue }
        let c = try db.showCreate("EVENT", name)
        guard let sql = c["Create Event"] else { continue }
        post.objects.append(
          (
            SchemaObject(type: "event", name: name, table: nil),
            routineText(stripDefiner(sql), sqlMode: c["sql_mode"], timeZone: c["time_zone"])
          ))
      }
    }
    try sink.beginPart(kind: .postData, table: nil)
    post.write(format: options.format, tarName: "post-data.sql", endOfArchive: true, mtime: mtime, to: out)
    try out.flush()
    try sink.endPart(rows: nil, contentChecksum: nil)
    for c in [db] + workers { try? c.exec("COMMIT") }
    let objects = schema.objects.map(\.0) + post.objects.map(\.0).filter { $0.type != "sequence set" }
    return DumpResult(
      serverVersion: serverVersion, sizeBytes: size, objects: objects, replicationPosition: position,
      creation: creation, warnings: warnings)
  }

  /// A routine, trigger or event body: run under its own sql_mode, between `DELIMITER ;;` lines
  /// as the mariadb client needs (the body holds semicolons).
  func routineText(_ sql: String, sqlMode: String?, timeZone: String? = nil) -> String {
    var s = "SET @ai_shell_saved_sql_mode = @@sql_mode;\n"
    s += "SET sql_mode = \(myString(sqlMode ?? ""));\n"
    if let tz = timeZone { s += "SET time_zone = \(myString(tz));\n" }
    s += "DELIMITER ;;\n" + sql + ";;\nDELIMITER ;\n"
    if timeZone != nil { s += "SET time_zone = '+00:00';\n" }
    return s + "SET sql_mode = @ai_shell_saved_sql_mode;\n\n"
  }

  /// Views in an order where each comes after the views it reads (by name in its definition).
  func orderViews(_ views: [MyTable], definitions: [[String: String]]) -> [(name: String, sql: String)] {
    var pending = zip(views, definitions).map { (name: $0.name, sql: $1["Create View"] ?? "") }
    var done: [(name: String, sql: String)] = []
    var emitted: Set<String> = []
    while !pending.isEmpty {
      let ready = pending.firstIndex { v in
        !pending.contains {
          $0.name != v.name && !emitted.contains($0.name) && v.sql.contains(myIdent($0.name))
        }
      }
      let next = pending.remove(at: ready ?? 0)
      emitted.insert(next.name)
      done.append(next)
    }
    return done
  }

  /// Row counts and content checksums, computed as `dump` computes them.
  func tableStatsImpl(_ names: [String]) throws -> [String: TableStats] {
    let db = try connect()
    try db.setStableSession()
    try db.exec("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    try db.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT")
    let tables = Set(try db.catalogTables().filter(\.isBaseTable).map(\.name))
    let columns = try db.catalogColumns()
    var result: [String: TableStats] = [:]
    for name in names {
      guard tables.contains(name) else {
        throw BackupError(
          .notFound, "table \"\(name)\" does not exist in MySQL/MariaDB database \(db.endpoint)")
      }
      var checksum = MyRowChecksum()
      try db.stream(mySelect(name, columns[name] ?? [])) { row, lengths, n in
        checksum.add(row, lengths: lengths, count: n)
      }
      result[name] = TableStats(rows: checksum.rows, contentChecksum: checksum.finalizeHex())
    }
    try? db.exec("COMMIT")
    return result
  }
}

/// How values are written into INSERT statements.
enum MySQLValue {
  static let hex: [UInt8] = Array("0123456789abcdef".utf8)

  static func append(_ v: UnsafeRawBufferPointer, kind: MyField.Kind, to out: OutputBuffer) {
    switch kind {
    case .number:
      out.append(v)
    case .bit:
      out.append("b'")
      for byte in v {
        for shift in stride(from: 7, through: 0, by: -1) {
          out.append(UInt8(ascii: (byte >> UInt8(shift)) & 1 == 1 ? "1" : "0"))
        }
      }
      if v.isEmpty { out.append(UInt8(ascii: "0")) }
      out.append(UInt8(ascii: "'"))
    case .binary:
      appendBinary(v, to: &out.bytes)
    case .text:
      appendText(v, to: &out.bytes)
    }
  }

  /// `0x…` hex (`''` when empty).
  static func appendBinary(_ v: UnsafeRawBufferPointer, to out: inout [UInt8]) {
    guard !v.isEmpty else {
      out.append(contentsOf: [0x27, 0x27])
      return
    }
    out.append(contentsOf: [UInt8(ascii: "0"), UInt8(ascii: "x")])
    for byte in v {
      out.append(hex[Int(byte >> 4)])
      out.append(hex[Int(byte & 15)])
    }
  }

  /// `'…'` with `\0 \n \r \Z \' \\` escaped.
  static func appendText(_ v: UnsafeRawBufferPointer, to out: inout [UInt8]) {
    out.append(UInt8(ascii: "'"))
    for byte in v {
      switch byte {
      case 0: out.append(contentsOf: [0x5C, UInt8(ascii: "0")])
      case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
      case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
      case 0x1A: out.append(contentsOf: [0x5C, UInt8(ascii: "Z")])
      case 0x27: out.append(contentsOf: [0x5C, 0x27])
      case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
      default: out.append(byte)
      }
    }
    out.append(UInt8(ascii: "'"))
  }
}
