import BackupModel
import CSQLite
import Foundation

/// What a restore will do to its target, decided before anything is written.
struct RestorePlan {
  /// Objects of the backup the restore creates (no sequences).
  var create: [SchemaObject] = []
  var skippedViews: [SchemaObject] = []
  /// Existing objects in the way: (type in the target, name in the target).
  var conflicts: [(type: String, name: String)] = []

  func creationSummary() -> String {
    var parts: [String] = []
    for (type, plural) in [
      ("table", "tables"), ("index", "indexes"), ("view", "views"), ("trigger", "triggers"),
    ] {
      let n = create.filter { $0.type == type }.count
      if n > 0 { parts.append("\(n) \(n == 1 ? type : plural)") }
    }
    return parts.isEmpty ? "nothing" : parts.joined(separator: ", ")
  }
}

/// SQLite folds ASCII letters only when it compares names.
func foldName(_ s: String) -> String {
  String(
    decoding: s.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }, as: UTF8.self)
}

extension SQLiteEngine {
  func planRestore(_ request: RestoreRequest, existing: [SchemaRow]) throws -> RestorePlan {
    var plan = RestorePlan()
    if let tables = request.tables {
      let known = Set(request.objects.filter { $0.type == "table" }.map(\.name))
      for t in tables.sorted() where !known.contains(t) {
        throw BackupError(.notFound, "table \"\(t)\" is not in the backup")
      }
    }
    for o in request.objects where ["table", "index", "view", "trigger"].contains(o.type) {
      if let tables = request.tables {
        if o.type == "view" {
          plan.skippedViews.append(o)
          continue
        }
        guard let t = o.table, tables.contains(t) else { continue }
      }
      plan.create.append(o)
    }
    var byName: [String: SchemaRow] = [:]
    for row in existing where !isInternalName(row.name) { byName[foldName(row.name)] = row }
    for o in plan.create {
      if let row = byName[foldName(o.name)] { plan.conflicts.append((row.type, row.name)) }
    }
    if !plan.conflicts.isEmpty && !request.dropExisting {
      let first = plan.conflicts[0]
      let more = plan.conflicts.count > 1 ? " (and \(plan.conflicts.count - 1) more)" : ""
      throw BackupError(
        .refused, "target \(path) already has \(first.type) \"\(first.name)\"\(more)",
        hint: "use --drop-existing to replace them")
    }
    return plan
  }

  func checkRestoreImpl(_ request: RestoreRequest) throws -> [String] {
    var notes: [String] = []
    var existing: [SchemaRow] = []
    if FileManager.default.fileExists(atPath: path) {
      let db = try SQLiteConnection(path: path, flags: SQLITE_OPEN_READONLY)
      db.setBusyTimeout(seconds: request.lockTimeoutSeconds)
      try db.checkReadable(lockWait: request.lockTimeoutSeconds)
      existing = try db.schemaRows()
    } else {
      let dir = (path as NSString).deletingLastPathComponent
      guard FileManager.default.isWritableFile(atPath: dir.isEmpty ? "." : dir) else {
        throw BackupError(.database, "cannot create \(path): the directory is missing or not writable")
      }
      notes.append("would create \(path)")
    }
    let plan = try planRestore(request, existing: existing)
    notes.append("would create \(plan.creationSummary())")
    for c in plan.conflicts { notes.append("would drop \(c.type) \"\(c.name)\"") }
    for v in plan.skippedViews { notes.append("view \"\(v.name)\" skipped: --tables given") }
    return notes
  }

  func restoreImpl(_ request: RestoreRequest, parts: PartOpener) throws -> RestoreReport {
    let existed = FileManager.default.fileExists(atPath: path)
    do {
      return try restoreInto(request, parts: parts, existed: existed)
    } catch {
      if !existed {
        for suffix in ["", "-journal", "-wal", "-shm"] {
          try? FileManager.default.removeItem(atPath: path + suffix)
        }
      }
      throw error
    }
  }

  private func restoreInto(_ request: RestoreRequest, parts: PartOpener, existed: Bool) throws
    -> RestoreReport
  {
    let flags = SQLITE_OPEN_READWRITE | (existed ? 0 : SQLITE_OPEN_CREATE)
    let db = try SQLiteConnection(path: path, flags: flags)
    db.setBusyTimeout(seconds: request.lockTimeoutSeconds)
    try db.checkReadable(lockWait: request.lockTimeoutSeconds)
    try db.exec("PRAGMA foreign_keys=OFF")
    try db.exec("BEGIN IMMEDIATE", lockWait: request.lockTimeoutSeconds)
    let session = RestoreSession(db: db, request: request, path: path)
    do {
      if !existed { session.report.notes.append("created \(path)") }
      let plan = try planRestore(request, existing: try db.schemaRows())
      let order = ["trigger", "index", "view", "table"]
      for type in order {
        for c in plan.conflicts where c.type == type {
          try db.exec("DROP \(type.uppercased()) IF EXISTS \(quoteIdentifier(c.name))")
          session.report.notes.append("dropped \(c.type) \"\(c.name)\"")
        }
      }
      for v in plan.skippedViews { session.report.notes.append("view \"\(v.name)\" skipped: --tables given") }
      for (i, part) in request.parts.enumerated() {
        let reader = InputReader(try parts.open(i))
        do {
          try session.apply(part: part, reader: reader)
        } catch let error as BackupError where error.status != .corrupt {
          // damaged bytes can fail as SQL before the part's checksum is reached: when the part
          // fails its checksum, that is the real cause
          do { try drain(reader) } catch let corrupt as BackupError where corrupt.status == .corrupt {
            throw corrupt
          }
          throw error
        }
        // read to the end so the part's checksum is checked
        try drain(reader)
      }
      try db.exec("COMMIT")
    } catch {
      if !db.autocommit { try? db.exec("ROLLBACK") }
      throw error
    }
    return session.report
  }
}

/// Reads a part to its end, which makes its reader check the part's size and SHA-256.
func drain(_ reader: InputReader) throws {
  var junk: [UInt8] = []
  while try reader.read(upTo: 1 << 20, appendingTo: &junk) > 0 { junk.removeAll(keepingCapacity: true) }
}

/// The state of one restore: the connection, the counters and the report.
final class RestoreSession {
  let db: SQLiteConnection
  let request: RestoreRequest
  let path: String
  var report = RestoreReport()
  var statementNumber = 0
  lazy var fastInsert = FastInsert(db: db)

  init(db: SQLiteConnection, request: RestoreRequest, path: String) {
    self.db = db
    self.request = request
    self.path = path
  }

  func apply(part: RestorePart, reader: InputReader) throws {
    switch request.format {
    case .sql:
      let rows = try runScript(partKind: part.kind, partTable: part.table) { try reader.readLine(into: &$0) }
      if part.kind == .table, let t = part.table, wants(table: t) {
        report.tables.append(TableRestoreResult(name: t, rows: rows))
      }
    case .json:
      try applyJSON(part: part, reader: reader)
    case .csv:
      try applyCSV(part: part, reader: reader)
    }
  }

  func wants(table: String) -> Bool { request.tables?.contains(table) ?? true }

  /// Whether a statement of a schema object runs under the table filter.
  func wants(object: SchemaObject?) -> Bool {
    guard let tables = request.tables, let o = object else { return true }
    if o.type == "view" { return false }
    guard let t = o.table else { return false }
    return tables.contains(t)
  }

  /// Records a statement failure, or throws it unless `continueOnError` allows going on.
  func failed(_ message: String) throws {
    let error = BackupError(.database, "statement \(statementNumber) failed: \(message)")
    guard request.continueOnError, !db.autocommit else { throw error }
    report.statementsFailed += 1
    if report.errors.count < 10 {
      report.errors.append(error.message.replacingOccurrences(of: "\n", with: " "))
    }
  }

  /// Runs every statement of `sql`; returns how many succeeded.
  @discardableResult
  func execute(_ sql: UnsafeRawBufferPointer) throws -> Int {
    guard var p = sql.baseAddress.map({ UnsafePointer($0.assumingMemoryBound(to: CChar.self)) }) else {
      return 0
    }
    let end = p + sql.count
    var ok = 0
    while p < end {
      var stmt: OpaquePointer?
      var tail: UnsafePointer<CChar>?
      statementNumber += 1
      let rc = sqlite3_prepare_v2(db.handle, p, Int32(end - p), &stmt, &tail)
      guard rc == SQLITE_OK else {
        try failed(db.errorMessage)
        return ok
      }
      guard let stmt else {
        statementNumber -= 1
        break
      }
      var src = sqlite3_step(stmt)
      while src == SQLITE_ROW { src = sqlite3_step(stmt) }
      if src == SQLITE_DONE {
        sqlite3_finalize(stmt)
        ok += 1
        report.statementsExecuted += 1
      } else {
        let message = db.errorMessage
        sqlite3_finalize(stmt)
        try failed(message)
      }
      guard let tail else { break }
      p = tail
    }
    return ok
  }

  func execute(_ sql: String) throws {
    var copy = sql
    _ = try copy.withUTF8 { try execute(UnsafeRawBufferPointer($0)) }
  }

  static let skipped: Set<[UInt8]> = [
    Array("PRAGMA foreign_keys=OFF;".utf8), Array("BEGIN TRANSACTION;".utf8), Array("COMMIT;".utf8),
  ]
  static let markerPrefix = Array(Bytes.markerPrefix.utf8)

  /// Runs sql text line by line as the sqlite3 shell does: a statement ends at a line ending in
  /// ";" where `sqlite3_complete` agrees. Returns the statements that succeeded.
  func runScript(partKind: PartKind, partTable: String?, nextLine: (inout [UInt8]) throws -> Bool) throws
    -> Int64
  {
    var splitter = ScriptSplitter()
    var line: [UInt8] = []
    var object: SchemaObject?
    var succeeded: Int64 = 0
    let runTablePart = partKind != .table || partTable.map { wants(table: $0) } ?? true
    while try nextLine(&line) {
      if !splitter.isInsideStatement && partKind == .table && runTablePart, let outcome = fastInsert.run(line)
      {
        statementNumber += 1
        switch outcome {
        case .done:
          report.statementsExecuted += 1
          succeeded += 1
        case .failed(let message):
          try failed(message)
        }
        continue
      }
      switch splitter.feed(line) {
      case nil:
        continue
      case .comment(let comment):
        if comment.starts(with: RestoreSession.markerPrefix) {
          object = try parseMarker(Array(comment.dropFirst(RestoreSession.markerPrefix.count)))
        }
      case .statement(let text):
        if text.count <= 24 && RestoreSession.skipped.contains(text) { continue }
        if object == nil && partKind == .schema
          && (text.starts(with: "PRAGMA user_version=".utf8)
            || text.starts(with: "PRAGMA application_id=".utf8))
          && request.tables != nil
        {
          continue
        }
        guard runTablePart, wants(object: object) else { continue }
        succeeded += Int64(try text.withUnsafeBytes { try execute($0) })
      }
    }
    if splitter.isInsideStatement {
      throw BackupError(.corrupt, "backup part ends inside an SQL statement", hint: "the backup is truncated")
    }
    return succeeded
  }

  func parseMarker(_ json: [UInt8]) throws -> SchemaObject {
    do {
      return try JSONDecoder().decode(SchemaObject.self, from: Data(json))
    } catch {
      throw BackupError(.corrupt, "bad object marker in backup: \(String(decoding: json, as: UTF8.self))")
    }
  }
}

@inline(__always) func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }
