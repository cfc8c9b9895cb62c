import BackupModel
import CSQLite
import Foundation

/// SQLITE_TRANSIENT is a macro the importer drops: SQLite copies the bound bytes.
let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// A thin owner of one sqlite3 connection.
final class SQLiteConnection {
  let handle: OpaquePointer
  let path: String

  init(path: String, flags: Int32) throws {
    var db: OpaquePointer?
    let rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, nil)
    guard rc == SQLITE_OK, let db else {
      let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
      if let db { sqlite3_close_v2(db) }
      throw BackupError(.database, "cannot open SQLite database \(path): \(message)")
    }
    handle = db
    self.path = path
    sqlite3_extended_result_codes(db, 1)
  }

  deinit { sqlite3_close_v2(handle) }

  var errorMessage: String { String(cString: sqlite3_errmsg(handle)) }

  func setBusyTimeout(seconds: Double) {
    sqlite3_busy_timeout(handle, Int32(max(0, min(seconds * 1000, Double(Int32.max)))))
  }

  /// Turns a result code into the documented error (locked, not a database, other).
  func error(_ rc: Int32, _ what: String, lockWait: Double? = nil) -> BackupError {
    let primary = rc & 0xFF
    if primary == SQLITE_BUSY || primary == SQLITE_LOCKED {
      let waited = lockWait.map { " (waited \(formatSeconds($0)) s)" } ?? ""
      return BackupError(
        .database, "database \(path) is locked by another connection\(waited)",
        hint: "retry when the writer is done or raise --lock-timeout")
    }
    if primary == SQLITE_NOTADB {
      return BackupError(.database, "\(path) is not a SQLite database", hint: "check the --database path")
    }
    return BackupError(.database, "\(what) failed on \(path): \(errorMessage)")
  }

  /// Runs SQL without results (may hold several statements).
  func exec(_ sql: String, lockWait: Double? = nil) throws {
    let rc = sqlite3_exec(handle, sql, nil, nil, nil)
    if rc != SQLITE_OK { throw error(rc, sql, lockWait: lockWait) }
  }

  func prepare(_ sql: String, lockWait: Double? = nil) throws -> Statement {
    var stmt: OpaquePointer?
    let rc = sqlite3_prepare_v2(handle, sql, -1, &stmt, nil)
    guard rc == SQLITE_OK, let stmt else { throw error(rc, "preparing \(sql)", lockWait: lockWait) }
    return Statement(stmt, connection: self, lockWait: lockWait)
  }

  var autocommit: Bool { sqlite3_get_autocommit(handle) != 0 }

  /// Bytes this connection has read from the database file: page-cache misses times the page
  /// size (each page of a scan is read once, so this tracks a dump's progress through the file).
  func bytesRead(pageSize: Int64) -> Int64 {
    var current: Int32 = 0
    var highwater: Int32 = 0
    sqlite3_db_status(handle, SQLITE_DBSTATUS_CACHE_MISS, &current, &highwater, 0)
    return Int64(current) * pageSize
  }
}

func formatSeconds(_ s: Double) -> String {
  s == s.rounded() ? String(Int(s)) : String(s)
}

final class Statement {
  let stmt: OpaquePointer
  unowned let connection: SQLiteConnection
  let lockWait: Double?

  init(_ stmt: OpaquePointer, connection: SQLiteConnection, lockWait: Double?) {
    self.stmt = stmt
    self.connection = connection
    self.lockWait = lockWait
  }

  deinit { sqlite3_finalize(stmt) }

  /// True while there is a row.
  @inline(__always) func step() throws -> Bool {
    let rc = sqlite3_step(stmt)
    if rc == SQLITE_ROW { return true }
    if rc == SQLITE_DONE { return false }
    throw connection.error(rc, "query", lockWait: lockWait)
  }

  func reset() { sqlite3_reset(stmt) }

  func bind(_ index: Int32, _ text: String) {
    sqlite3_bind_text(stmt, index, text, -1, sqliteTransient)
  }

  @inline(__always) func type(_ i: Int32) -> Int32 { sqlite3_column_type(stmt, i) }
  @inline(__always) func int64(_ i: Int32) -> Int64 { sqlite3_column_int64(stmt, i) }
  @inline(__always) func double(_ i: Int32) -> Double { sqlite3_column_double(stmt, i) }

  func string(_ i: Int32) -> String? {
    guard let p = sqlite3_column_text(stmt, i) else { return nil }
    let n = Int(sqlite3_column_bytes(stmt, i))
    return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
  }

  /// The bytes of a TEXT value (valid until the next step).
  @inline(__always) func textBytes(_ i: Int32) -> UnsafeRawBufferPointer {
    let p = sqlite3_column_text(stmt, i)
    let n = Int(sqlite3_column_bytes(stmt, i))
    guard let p, n > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: p, count: n)
  }

  @inline(__always) func blobBytes(_ i: Int32) -> UnsafeRawBufferPointer {
    let p = sqlite3_column_blob(stmt, i)
    let n = Int(sqlite3_column_bytes(stmt, i))
    guard let p, n > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: p, count: n)
  }
}

/// A table of the source as the engine dumps it.
struct TableInfo {
  var name: String
  var sql: String
  var isVirtual: Bool
}

struct ColumnInfo {
  var name: String
  var type: String
}

/// One row of sqlite_schema.
struct SchemaRow {
  var type: String
  var name: String
  var table: String
  var sql: String?
}

extension SQLiteConnection {
  /// Fails with the documented errors when the file is not a database or is locked.
  func checkReadable(lockWait: Double? = nil) throws {
    let s = try prepare("SELECT count(*) FROM sqlite_schema", lockWait: lockWait)
    _ = try s.step()
  }

  func schemaRows() throws -> [SchemaRow] {
    let s = try prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY rowid")
    var out: [SchemaRow] = []
    while try s.step() {
      out.append(
        SchemaRow(
          type: s.string(0) ?? "", name: s.string(1) ?? "", table: s.string(2) ?? "", sql: s.string(3)))
    }
    return out
  }

  /// main-schema names by `PRAGMA table_list` type (table, view, shadow, virtual).
  func tableListTypes() throws -> [String: String] {
    let s = try prepare("SELECT name, type FROM pragma_table_list WHERE schema = 'main'")
    var out: [String: String] = [:]
    while try s.step() { out[s.string(0) ?? ""] = s.string(1) ?? "" }
    return out
  }

  /// User tables in creation order: no sqlite_ internals, no virtual tables' shadow tables.
  func userTables() throws -> [TableInfo] {
    let types = try tableListTypes()
    return try schemaRows().compactMap { row in
      guard row.type == "table", !isInternalName(row.name), let sql = row.sql else { return nil }
      let t = types[row.name]
      guard t == "table" || t == "virtual" else { return nil }
      return TableInfo(name: row.name, sql: sql, isVirtual: t == "virtual")
    }
  }

  /// The dumped columns: `table_xinfo` without hidden/generated ones.
  func columns(of table: String) throws -> [ColumnInfo] {
    let s = try prepare("SELECT name, type, hidden FROM pragma_table_xinfo(?1)")
    s.bind(1, table)
    var out: [ColumnInfo] = []
    while try s.step() {
      guard s.int64(2) == 0 else { continue }
      out.append(ColumnInfo(name: s.string(0) ?? "", type: s.string(1) ?? ""))
    }
    return out
  }

  /// True when the table has generated (or other hidden) columns, so inserts must name columns.
  func hasHiddenColumns(_ table: String) throws -> Bool {
    let s = try prepare("SELECT count(*) FROM pragma_table_xinfo(?1) WHERE hidden != 0")
    s.bind(1, table)
    return try s.step() && s.int64(0) > 0
  }

  func pragmaInt(_ name: String) throws -> Int64 {
    let s = try prepare("PRAGMA \(name)")
    return try s.step() ? s.int64(0) : 0
  }
}

func isInternalName(_ name: String) -> Bool {
  name.utf8.count >= 7 && name.lowercased().hasPrefix("sqlite_")
}

/// `"name"` with `"` doubled.
func quoteIdentifier(_ name: String) -> String {
  "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

/// `'text'` with `'` doubled.
func quoteLiteral(_ text: String) -> String {
  "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
}

/// The scan every checksum uses: rowid order, PK order for WITHOUT ROWID tables.
func scanSQL(table: String, columns: [ColumnInfo], isVirtual: Bool) -> String {
  let cols = columns.map { quoteIdentifier($0.name) }.joined(separator: ",")
  return "SELECT \(cols) FROM \(quoteIdentifier(table))\(isVirtual ? "" : " NOT INDEXED")"
}

/// Binds TEXT bytes (an empty value stays an empty string, never NULL).
@inline(__always) func bindText(_ stmt: OpaquePointer, _ index: Int32, _ raw: UnsafeRawBufferPointer) {
  if let base = raw.baseAddress, raw.count > 0 {
    sqlite3_bind_text(
      stmt, index, base.assumingMemoryBound(to: CChar.self), Int32(raw.count), sqliteTransient)
  } else {
    sqlite3_bind_text(stmt, index, "", 0, sqliteTransient)
  }
}

/// Binds BLOB bytes (an empty value stays an empty blob, never NULL).
@inline(__always) func bindBlob(_ stmt: OpaquePointer, _ index: Int32, _ raw: UnsafeRawBufferPointer) {
  if let base = raw.baseAddress, raw.count > 0 {
    sqlite3_bind_blob(stmt, index, base, Int32(raw.count), sqliteTransient)
  } else {
    sqlite3_bind_zeroblob(stmt, index, 0)
  }
}
