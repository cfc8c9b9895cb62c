import BackupModel
import CLibPQ
import Foundation

/// An existing relation in the restore target that the backup would create.
struct PGConflict {
  var kind: String
  var name: String
  var sql: String
}

extension PostgresEngine {
  /// Relations of the backup (tables, views, materialized views, standalone sequences) that
  /// already exist in the target.
  func conflicts(_ db: PGConnection, _ request: RestoreRequest) throws -> [PGConflict] {
    let tables = try request.restoredTables()
    var wanted: [String: String] = [:]
    for o in request.objects {
      switch o.type {
      case "table", "foreign table":
        if tables.contains(o.name) { wanted[o.name] = "table" }
      case "view", "materialized view":
        if request.tables == nil { wanted[o.name] = o.type }
      case "sequence":
        if o.table == nil && request.tables == nil { wanted[o.name] = "sequence" }
      default: continue
      }
    }
    for t in tables { wanted[t] = wanted[t] ?? "table" }
    let existing = try db.query(
      """
      SELECT n.nspname || '.' || c.relname, c.relkind::text,
             pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
        AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
      ORDER BY 1
      """)
    let kinds = [
      "r": "table", "p": "table", "v": "view", "m": "materialized view", "S": "sequence",
      "f": "foreign table",
    ]
    return existing.compactMap { r -> PGConflict? in
      guard let name = r[0], wanted[name] != nil else { return nil }
      return PGConflict(kind: kinds[r[1] ?? ""] ?? "relation", name: name, sql: r[2]!)
    }
  }

  func refuse(_ conflicts: [PGConflict], endpoint: String) -> BackupError {
    let first = conflicts[0]
    let more = conflicts.count > 1 ? " (and \(conflicts.count - 1) more)" : ""
    return BackupError(
      .refused, "target \(endpoint) already has \(first.kind) \"\(first.name)\"\(more)",
      hint: "use --drop-existing to replace them")
  }

  func checkRestoreImpl(_ request: RestoreRequest) throws -> [String] {
    guard request.format == .sql else {
      throw BackupError(.usage, "PostgreSQL restores support sql backups only in this version")
    }
    let info = try ConnInfo(url)
    let tables = try request.restoredTables()
    var notes: [String] = []
    do {
      let db = try PGConnection(info)
      let c = try conflicts(db, request)
      if !c.isEmpty && !request.dropExisting { throw refuse(c, endpoint: db.endpoint) }
      for x in c { notes.append("would drop \(x.kind) \"\(x.name)\"") }
    } catch let e as BackupError where e.status == .notFound {
      _ = try PGConnection(try ConnInfo(url).maintenance())
      notes.append("would create database \"\(info.databaseName)\"")
    }
    notes.append("would restore \(tables.count) table\(tables.count == 1 ? "" : "s")")
    if request.tables != nil { notes.append("views and materialized views are skipped: --tables given") }
    return notes
  }

  func restoreImpl(_ request: RestoreRequest, parts: PartOpener) throws -> RestoreReport {
    guard request.format == .sql else {
      throw BackupError(.usage, "PostgreSQL restores support sql backups only in this version")
    }
    let info = try ConnInfo(url)
    _ = try request.restoredTables()
    var created = false
    let db: PGConnection
    do {
      db = try PGConnection(info)
    } catch let e as BackupError where e.status == .notFound {
      let admin = try PGConnection(try info.maintenance())
      try admin.query("CREATE DATABASE \(quoteIdent(info.databaseName)) TEMPLATE template0")
      created = true
      db = try PGConnection(info)
    }
    do {
      let session = PGRestoreSession(db: db, request: request)
      if created { session.report.notes.append("created database \"\(info.databaseName)\"") }
      try session.run(engine: self, parts: parts)
      return session.report
    } catch {
      if created { try? dropDatabase(info.databaseName) }
      throw error
    }
  }

  /// Drops a database on the engine's server (connecting to the maintenance database).
  func dropDatabase(_ name: String) throws {
    let admin = try PGConnection(try ConnInfo(url).maintenance())
    try admin.query("DROP DATABASE IF EXISTS \(quoteIdent(name)) WITH (FORCE)")
  }
}

func quoteIdent(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }

extension ConnInfo {
  /// The same server, the maintenance database `postgres`.
  func maintenance() throws -> ConnInfo {
    var c = self
    c.options["dbname"] = "postgres"
    return c
  }
}

/// One restore: the connection, the counters and the report.
final class PGRestoreSession {
  let db: PGConnection
  let request: RestoreRequest
  var report = RestoreReport()
  var statementNumber = 0
  var missingRoles: Set<String> = []
  var ownershipStatementsSkipped = 0
  var keptExisting: [String] = []
  var skippedViews = 0

  static let markerPrefix = Array(Bytes.markerPrefix.utf8)
  /// duplicate_schema, duplicate_object, duplicate_function: a schema-wide object (schema, type,
  /// function, extension) that the target already has is kept.
  static let duplicateStates: Set<String> = ["42P06", "42710", "42723"]

  init(db: PGConnection, request: RestoreRequest) {
    self.db = db
    self.request = request
  }

  func run(engine: PostgresEngine, parts: PartOpener) throws {
    try db.query("SET lock_timeout = \(max(1, Int(request.lockTimeoutSeconds * 1000)))")
    try db.query("BEGIN")
    do {
      let conflicts = try engine.conflicts(db, request)
      if !conflicts.isEmpty {
        guard request.dropExisting else { throw engine.refuse(conflicts, endpoint: db.endpoint) }
        let order = ["materialized view", "view", "table", "foreign table", "sequence"]
        for kind in order {
          for c in conflicts where c.kind == kind {
            let what = kind == "table" ? "TABLE" : kind.uppercased()
            try db.query("DROP \(what) IF EXISTS \(c.sql) CASCADE")
            report.notes.append("dropped \(c.kind) \"\(c.name)\"")
          }
        }
      }
      for (i, part) in request.parts.enumerated() {
        let reader = InputReader(try parts.open(i))
        switch part.kind {
        case .table:
          try runTablePart(reader: reader, table: part.table)
        case .schema, .postData:
          var bytes: [UInt8] = []
          while try reader.read(upTo: 1 << 20, appendingTo: &bytes) > 0 {}
          try runScript(bytes)
        }
        // read to the end so the part's checksum is checked before anything commits
        var junk: [UInt8] = []
        while try reader.read(upTo: 1 << 20, appendingTo: &junk) > 0 { junk.removeAll(keepingCapacity: true) }
      }
      try db.query("COMMIT")
    } catch {
      if PQtransactionStatus(db.conn) == PQTRANS_ACTIVE {
        _ = try? db.endCopyIn(failWith: "restore aborted")
      }
      _ = try? db.query("ROLLBACK")
      throw error
    }
    if !missingRoles.isEmpty {
      let user = (try? db.query("SELECT current_user").first?.first ?? nil) ?? "the restoring user"
      report.notes.append(
        "role\(missingRoles.count == 1 ? "" : "s") \(missingRoles.sorted().map { "\"\($0)\"" }.joined(separator: ", ")) "
          + "missing on this server: ownership and privileges of \(ownershipStatementsSkipped) statement\(ownershipStatementsSkipped == 1 ? "" : "s") "
          + "fell to \(user)")
    }
    for k in keptExisting.prefix(20) { report.notes.append("kept existing \(k)") }
    if keptExisting.count > 20 {
      report.notes.append("kept \(keptExisting.count - 20) more existing objects")
    }
    if skippedViews > 0 { report.notes.append("\(skippedViews) view entries skipped: --tables given") }
  }

  func wants(table: String) -> Bool { request.tables?.contains(table) ?? true }

  func wants(object: SchemaObject?) -> Bool {
    guard let tables = request.tables, let o = object else { return true }
    if let t = o.table { return tables.contains(t) }
    if isViewEntry(o) {
      if o.type == "view" || o.type == "materialized view" { skippedViews += 1 }
      return false
    }
    return true
  }

  func failed(_ e: PGStatementError, object: SchemaObject?) throws {
    let what = object.map { " (\($0.type) \($0.name))" } ?? ""
    let error = BackupError(.database, "statement \(statementNumber)\(what) failed: \(e.message)")
    guard request.continueOnError else { throw error }
    report.statementsFailed += 1
    if report.errors.count < 10 { report.errors.append(oneLine(error.message)) }
  }

  func startsWith(_ b: ArraySlice<UInt8>, _ prefix: String) -> Bool {
    let p = Array(prefix.utf8)
    guard b.count >= p.count else { return false }
    return zip(b.prefix(p.count), p).allSatisfy { a, c in a == c || (a >= 0x61 && a <= 0x7A && a - 0x20 == c)
    }
  }

  /// Runs a schema or post-data part statement by statement, in the restore's transaction.
  func runScript(_ b: [UInt8]) throws {
    var object: SchemaObject?
    for piece in try PGText.pieces(b) {
      switch piece {
      case .line(let r):
        var first = r.lowerBound
        while first < r.upperBound && (b[first] == 0x20 || b[first] == 0x09) { first += 1 }
        if b[first..<r.upperBound].starts(with: PGRestoreSession.markerPrefix) {
          let json = b[(first + PGRestoreSession.markerPrefix.count)..<r.upperBound]
          do {
            object = try JSONDecoder().decode(SchemaObject.self, from: Data(json))
          } catch {
            throw BackupError(
              .corrupt, "bad object marker in backup: \(String(decoding: json, as: UTF8.self))")
          }
        }
      case .statement(let r):
        guard wants(object: object) else { continue }
        var start = r.lowerBound
        while start < r.upperBound && PGText.isBlank(b[start..<(start + 1)]) { start += 1 }
        let text = b[start..<r.upperBound]
        statementNumber += 1
        let isOwnership =
          (startsWith(text, "ALTER ") && text.firstRange(of: Array(" OWNER TO ".utf8)) != nil)
          || startsWith(text, "GRANT ") || startsWith(text, "REVOKE ")
        let isGlobalCreate =
          object != nil && object?.table == nil && startsWith(text, "CREATE ") && !isViewEntry(object!)
        if isOwnership || isGlobalCreate || request.continueOnError {
          try db.query("SAVEPOINT ai_shell_statement")
          do {
            try text.withUnsafeBytes { _ = try db.execRaw($0) }
            try db.query("RELEASE SAVEPOINT ai_shell_statement")
            report.statementsExecuted += 1
          } catch let e as PGStatementError {
            try db.query("ROLLBACK TO SAVEPOINT ai_shell_statement; RELEASE SAVEPOINT ai_shell_statement")
            if isOwnership && e.sqlstate == "42704" {
              ownershipStatementsSkipped += 1
              if let q1 = e.message.range(of: "role \""),
                let q2 = e.message[q1.upperBound...].firstIndex(of: "\"")
              {
                missingRoles.insert(String(e.message[q1.upperBound..<q2]))
              }
            } else if isGlobalCreate && PGRestoreSession.duplicateStates.contains(e.sqlstate), let o = object
            {
              keptExisting.append("\(o.type) \"\(o.name)\"")
            } else {
              try failed(e, object: object)
            }
          }
        } else {
          do {
            try text.withUnsafeBytes { _ = try db.execRaw($0) }
            report.statementsExecuted += 1
          } catch let e as PGStatementError {
            try failed(e, object: object)
          }
        }
      }
    }
  }

  static let endOfData: [UInt8] = Array("\\.\n".utf8)

  /// Streams a table part's `COPY … FROM stdin;` block to the server.
  func runTablePart(reader: InputReader, table: String?) throws {
    let run = table.map { wants(table: $0) } ?? true
    var line: [UInt8] = []
    var buffer: [UInt8] = []
    buffer.reserveCapacity(512 * 1024)
    var copying = false
    var sawCopy = false
    let useSavepoint = request.continueOnError
    while try reader.readLine(into: &line) {
      if copying {
        if line == PGRestoreSession.endOfData || line == [0x5C, 0x2E] {
          copying = false
          guard run else { continue }
          do {
            try buffer.withUnsafeBytes { try db.putCopyData($0) }
            buffer.removeAll(keepingCapacity: true)
            let rows = try db.endCopyIn()
            if useSavepoint { try db.query("RELEASE SAVEPOINT ai_shell_copy") }
            report.statementsExecuted += 1
            if let table { report.tables.append(TableRestoreResult(name: table, rows: rows)) }
          } catch let e as PGStatementError {
            if useSavepoint {
              try db.query("ROLLBACK TO SAVEPOINT ai_shell_copy; RELEASE SAVEPOINT ai_shell_copy")
            }
            try failed(e, object: table.map { SchemaObject(type: "data", name: $0, table: $0) })
          }
          continue
        }
        guard run else { continue }
        buffer.append(contentsOf: line)
        if buffer.count >= 256 * 1024 {
          try buffer.withUnsafeBytes { try db.putCopyData($0) }
          buffer.removeAll(keepingCapacity: true)
        }
        continue
      }
      guard let first = line.firstIndex(where: { !PGText.isBlank([$0][...]) }) else { continue }
      if line[first...].starts(with: [0x2D, 0x2D]) { continue }
      guard startsWith(line[first...], "COPY "), !sawCopy else {
        throw BackupError(.corrupt, "unexpected text in the data part of \(table ?? "a table")")
      }
      sawCopy = true
      copying = true
      guard run else { continue }
      statementNumber += 1
      if useSavepoint { try db.query("SAVEPOINT ai_shell_copy") }
      do {
        let st = try line[first...].withUnsafeBytes { try db.execRaw($0) }
        guard st == PGRES_COPY_IN else {
          throw BackupError(
            .corrupt, "the data part of \(table ?? "a table") does not start with COPY … FROM stdin")
        }
      } catch let e as PGStatementError {
        throw BackupError(
          .database, "statement \(statementNumber) (COPY \(table ?? "")) failed: \(e.message)")
      }
    }
    if copying {
      if run { _ = try? db.endCopyIn(failWith: "backup part truncated") }
      throw BackupError(
        .corrupt, "the data of \(table ?? "a table") ends without \\.", hint: "the backup is truncated")
    }
  }
}
