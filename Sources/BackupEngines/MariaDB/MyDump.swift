import BackupModel
import Foundation

/// A table or view of the dumped database, as information_schema describes it.
struct MyTable {
  var name: String
  var type: String
  var engine: String?
  var isBaseTable: Bool { type == "BASE TABLE" || type == "SYSTEM VERSIONED" }
  var isView: Bool { type == "VIEW" }
  /// Rows read inside `START TRANSACTION WITH CONSISTENT SNAPSHOT` are from the snapshot only for
  /// these engines; others (MyISAM, Aria, MEMORY, …) are consistent only under the read lock.
  var isTransactional: Bool {
    ["innodb", "rocksdb", "tokudb"].contains((engine ?? "").lowercased())
  }
}

struct MyColumn {
  var name: String
  var generated: Bool
  var invisible: Bool
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
      SELECT TABLE_NAME, COLUMN_NAME, EXTRA FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION
      """)
    {
      let extra = (r[2] ?? "").uppercased()
      out[r[0] ?? "", default: []].append(
        MyColumn(
          name: r[1] ?? "", generated: extra.contains("GENERATED"), invisible: extra.contains("INVISIBLE")))
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

extension MariaDBEngine {
  static let schemaHeader = """
    SET NAMES utf8mb4;
    SET TIME_ZONE='+00:00';
    SET FOREIGN_KEY_CHECKS=0;
    SET UNIQUE_CHECKS=0;
    SET SQL_MODE='NO_AUTO_VALUE_ON_ZERO';
    SET SQL_NOTES=0;

    """

  func dumpImpl(options: DumpOptions, to sink: PartSink) throws -> DumpResult {
    guard options.format == .sql else {
      throw BackupError(
        .usage, "MySQL/MariaDB backups support --format sql only in this version",
        hint: "csv and json for MySQL/MariaDB are not implemented yet")
    }
    let dbName = try databaseName
    let db = try connect()
    try db.setStableSession()
    let lockSeconds = max(1, Int(options.lockTimeoutSeconds.rounded(.up)))
    try db.exec("SET SESSION lock_wait_timeout = \(lockSeconds)")
    let serverVersion = db.serverVersion
    var warnings: [String] = []

    // one snapshot for every table: a brief global read lock, the snapshot, the binlog position
    do {
      try db.exec("FLUSH TABLES WITH READ LOCK")
    } catch let e as BackupError {
      throw BackupError(
        .database, e.message,
        hint: "the backup user needs the RELOAD privilege; a long-running statement can also block the lock")
    }
    var locked = true
    defer { if locked { try? db.exec("UNLOCK TABLES") } }
    try db.exec("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    try db.exec("START TRANSACTION WITH CONSISTENT SNAPSHOT")
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
    for t in all where !t.isBaseTable && !t.isView {
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

    var objects: [SchemaObject] = []
    let out = OutputBuffer(sink: sink)

    // schema: session settings, then every table's CREATE TABLE (read under the lock)
    try sink.beginPart(kind: .schema, table: nil)
    out.append(
      "-- ai-shell backup of MySQL/MariaDB database \(oneLine(dbName)) (server \(serverVersion))\n"
        + "-- restore with: mariadb newdb < this-file (after decompressing)\n")
    if let p = position {
      out.append(
        "-- binary log position: \(p.binlogFile):\(p.binlogPosition)\(p.gtid.map { " gtid \($0)" } ?? "")\n")
    }
    out.append(MariaDBEngine.schemaHeader)
    for t in tables {
      let create = try db.showCreate("TABLE", t.name)["Create Table"] ?? ""
      let o = SchemaObject(type: "table", name: t.name, table: t.name)
      objects.append(o)
      out.append(Bytes.markerPrefix + Bytes.markerJSON(o) + "\n")
      out.append(create + ";\n\n")
    }
    try out.flush()
    try sink.endPart(rows: nil, contentChecksum: nil)
    if lastLocked == nil {
      try db.exec("UNLOCK TABLES")
      locked = false
    }

    // one part per table: batched multi-row INSERTs, streamed
    for (index, t) in tables.enumerated() {
      let cols = (columns[t.name] ?? []).filter { !$0.generated }
      let needsList = (columns[t.name] ?? []).contains { $0.generated || $0.invisible }
      let select = cols.map { myIdent($0.name) }.joined(separator: ", ")
      let prefix = Array(
        ("INSERT INTO \(myIdent(t.name))" + (needsList ? " (\(select))" : "") + " VALUES ").utf8)
      try sink.beginPart(kind: .table, table: t.name)
      out.append(
        Bytes.markerPrefix + Bytes.markerJSON(SchemaObject(type: "data", name: t.name, table: t.name)) + "\n")
      var checksum = MyRowChecksum()
      var kinds: [MyField.Kind] = []
      var statementBytes = 0
      var open = false
      try db.stream(
        "SELECT \(select) FROM \(myIdent(t.name))", fields: { kinds = $0.map(\.kind) }
      ) { row, lengths, n in
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
          let value = UnsafeRawBufferPointer(start: p, count: Int(lengths[i]))
          MySQLValue.append(value, kind: kinds[i], to: out)
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
      try out.flush()
      try sink.endPart(rows: checksum.rows, contentChecksum: checksum.finalizeHex())
      if locked, let last = lastLocked, index >= last {
        try db.exec("UNLOCK TABLES")
        locked = false
      }
    }

    // post-data: routines, views, triggers, events (in the snapshot where the server allows)
    try sink.beginPart(kind: .postData, table: nil)
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
        let o = SchemaObject(type: type.lowercased(), name: name, table: nil)
        objects.append(o)
        appendRoutine(o, sql: stripDefiner(sql), sqlMode: c["sql_mode"], to: out)
      }
    }
    for v in orderViews(views, definitions: try views.map { try db.showCreate("VIEW", $0.name) }) {
      let o = SchemaObject(type: "view", name: v.name, table: nil)
      objects.append(o)
      out.append(Bytes.markerPrefix + Bytes.markerJSON(o) + "\n")
      out.append(stripDefiner(v.sql) + ";\n\n")
    }
    let wanted = Set(tables.map(\.name))
    for r in try db.query(
      "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE() ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER"
    ) {
      guard let name = r[0], let table = r[1], wanted.contains(table) else { continue }
      let c = try db.showCreate("TRIGGER", name)
      guard let sql = c["SQL Original Statement"] else { continue }
      let o = SchemaObject(type: "trigger", name: name, table: table)
      objects.append(o)
      appendRoutine(o, sql: stripDefiner(sql), sqlMode: c["sql_mode"], to: out)
    }
    if !selective {
      for r in try db.query(
        "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE() ORDER BY EVENT_NAME"
      ) {
        guard let name = r[0] else { continue }
        let c = try db.showCreate("EVENT", name)
        guard let sql = c["Create Event"] else { continue }
        let o = SchemaObject(type: "event", name: name, table: nil)
        objects.append(o)
        appendRoutine(o, sql: stripDefiner(sql), sqlMode: c["sql_mode"], timeZone: c["time_zone"], to: out)
      }
    }
    out.append("SET FOREIGN_KEY_CHECKS=1;\nSET UNIQUE_CHECKS=1;\n")
    try out.flush()
    try sink.endPart(rows: nil, contentChecksum: nil)
    try? db.exec("COMMIT")
    return DumpResult(
      serverVersion: serverVersion, sizeBytes: size, objects: objects, replicationPosition: position,
      warnings: warnings)
  }

  /// A routine, trigger or event body: run under its own sql_mode, between `DELIMITER ;;` lines
  /// as the mariadb client needs (the body holds semicolons).
  func appendRoutine(
    _ o: SchemaObject, sql: String, sqlMode: String?, timeZone: String? = nil, to out: OutputBuffer
  ) {
    out.append(Bytes.markerPrefix + Bytes.markerJSON(o) + "\n")
    out.append("SET @ai_shell_saved_sql_mode = @@sql_mode;\n")
    out.append("SET sql_mode = \(myString(sqlMode ?? ""));\n")
    if let tz = timeZone { out.append("SET time_zone = \(myString(tz));\n") }
    out.append("DELIMITER ;;\n")
    out.append(sql + ";;\n")
    out.append("DELIMITER ;\n")
    if timeZone != nil { out.append("SET time_zone = '+00:00';\n") }
    out.append("SET sql_mode = @ai_shell_saved_sql_mode;\n\n")
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
      let select = (columns[name] ?? []).filter { !$0.generated }.map { myIdent($0.name) }.joined(
        separator: ", ")
      var checksum = MyRowChecksum()
      try db.stream("SELECT \(select) FROM \(myIdent(name))") { row, lengths, n in
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
      guard !v.isEmpty else {
        out.append("''")
        return
      }
      out.append("0x")
      for byte in v {
        out.append(hex[Int(byte >> 4)])
        out.append(hex[Int(byte & 15)])
      }
    case .text:
      out.append(UInt8(ascii: "'"))
      for byte in v {
        switch byte {
        case 0: out.append("\\0")
        case 0x0A: out.append("\\n")
        case 0x0D: out.append("\\r")
        case 0x1A: out.append("\\Z")
        case 0x27: out.append("\\'")
        case 0x5C: out.append("\\\\")
        default: out.append(byte)
        }
      }
      out.append(UInt8(ascii: "'"))
    }
  }
}
