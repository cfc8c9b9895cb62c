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
    let info = try ConnInfo(url)
    let tables = try request.restoredTables()
    var notes: [String] = []
    // the connections are left to the restore that follows (`connect()`, `maintenanceIdle`)
    do {
      let db = try connect()
      let c = try conflicts(db, request)
      if !c.isEmpty && !request.dropExisting { throw refuse(c, endpoint: db.endpoint) }
      for x in c { notes.append("would drop \(x.kind) \"\(x.name)\"") }
      if !request.isParallel, let locks = try PGRestoreSession.tooManyLocks(db, request) {
        notes.append("would restore " + PGRestoreSession.batchNote(locks))
      }
      probed.put(db)
    } catch let e as BackupError where e.status == .notFound {
      maintenanceIdle.put(try PGConnection(try ConnInfo(url).maintenance()))
      notes.append(
        "would create database \"\(info.databaseName)\""
          + (request.creation.map { " with the source's encoding and locale (\(Self.describe($0)))" } ?? ""))
    }
    notes.append("would restore \(tables.count) table\(tables.count == 1 ? "" : "s")")
    if request.isParallel {
      notes.append(
        "would load tables on \(request.jobs) connections, each table in its own transaction (--jobs \(request.jobs))"
      )
    }
    if request.tables != nil { notes.append("views and materialized views are skipped: --tables given") }
    return notes
  }

  func restoreImpl(_ request: RestoreRequest, parts: PartOpener) throws -> RestoreReport {
    let info = try ConnInfo(url)
    _ = try request.restoredTables()
    var created: String?
    let db: PGConnection
    do {
      db = try connect()
    } catch let e as BackupError where e.status == .notFound {
      let admin = try maintenanceIdle.take() ?? PGConnection(try info.maintenance())
      created = try createDatabase(info.databaseName, like: request.creation, on: admin)
      db = try PGConnection(info)
    }
    do {
      let session = PGRestoreSession(db: db, request: request)
      if let created { session.report.notes.append(created) }
      let batched = try session.batchIfTooManyLocks()
      if request.isParallel || batched {
        try session.runParallel(
          engine: self, parts: PGLockedOpener(parts), info: info, createdDatabase: created != nil)
      } else {
        try session.run(engine: self, parts: parts)
      }
      return session.report
    } catch {
      if created != nil { try? dropDatabase(info.databaseName) }
      throw error
    }
  }

  /// Creates a restore's target database from template0 with the source's encoding and locale
  /// (`source`, from the manifest) where this server has them, as `pg_restore -C` would; with the
  /// server's defaults where it refuses them (a locale it lacks) or the backup did not record
  /// them. Returns the note that says which.
  func createDatabase(_ name: String, like source: Manifest.DatabaseCreation?, on admin: PGConnection) throws
    -> String
  {
    let create = "CREATE DATABASE \(quoteIdent(name)) TEMPLATE template0"
    guard let source else {
      try admin.query(create)
      return "created database \"\(name)\""
    }
    let refusal: String
    if let options = Self.creationOptions(source, serverVersion: admin.serverVersionNumber) {
      do {
        try admin.query(create + options)
        return "created database \"\(name)\" with the source's encoding and locale (\(Self.describe(source)))"
      } catch let e as BackupError {
        refusal = e.message.replacingOccurrences(of: "PostgreSQL at \(admin.endpoint): ", with: "")
      }
    } else {
      refusal = "this server has no \(source.localeProvider ?? "") locale provider"
    }
    try admin.query(create)
    return "created database \"\(name)\" with this server's default encoding and locale, not the source's "
      + "(\(Self.describe(source))): \(refusal)"
  }

  /// The `CREATE DATABASE` options for `c` on a server of `serverVersion`; nil when that server
  /// has no such locale provider (ICU and LOCALE_PROVIDER: 15, builtin: 17).
  static func creationOptions(_ c: Manifest.DatabaseCreation, serverVersion: Int) -> String? {
    var sql =
      " ENCODING \(quoteLiteral(c.encoding)) LC_COLLATE \(quoteLiteral(c.lcCollate)) LC_CTYPE \(quoteLiteral(c.lcCtype))"
    switch (c.localeProvider ?? "libc", c.providerLocale) {
    case ("libc", _):
      // the server's default provider may be another one
      if serverVersion >= 150000 { sql += " LOCALE_PROVIDER libc" }
    case ("icu", let locale?) where serverVersion >= 150000:
      sql += " LOCALE_PROVIDER icu ICU_LOCALE \(quoteLiteral(locale))"
    case ("builtin", let locale?) where serverVersion >= 170000:
      sql += " LOCALE_PROVIDER builtin BUILTIN_LOCALE \(quoteLiteral(locale))"
    default:
      return nil
    }
    return sql
  }

  static func describe(_ c: Manifest.DatabaseCreation) -> String {
    var s = "\(c.encoding), LC_COLLATE \(c.lcCollate), LC_CTYPE \(c.lcCtype)"
    if let p = c.localeProvider, p != "libc" { s += ", \(p) locale \(c.providerLocale ?? "")" }
    return s
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
    try raiseMaintenanceWorkMem()
    try db.query("BEGIN")
    do {
      try dropConflicts(engine: engine)
      for (i, part) in request.parts.enumerated() {
        try apply(part, reader: InputReader(try parts.open(i)))
      }
      try db.query("COMMIT")
    } catch {
      abortTransaction()
      throw error
    }
    addNotes()
  }

  /// The post-data part builds every index and checks every constraint of the restored tables:
  /// with the server's default maintenance_work_mem (64 MB) a big table's index is sorted on
  /// disk. PostgreSQL's documentation recommends larger values for restoring dumps, so the
  /// restore session (only it) raises it to 512 MB when it is lower. Sorts use what they need,
  /// up to that.
  func raiseMaintenanceWorkMem() throws {
    let current = try db.query(
      "SELECT pg_catalog.pg_size_bytes(pg_catalog.current_setting('maintenance_work_mem'))")
    if let v = current.first?.first ?? nil, let bytes = Int64(v), bytes < PGRestoreSession.maintenanceWorkMem
    {
      try db.query("SET maintenance_work_mem = '\(PGRestoreSession.maintenanceWorkMem >> 20)MB'")
    }
  }

  static let maintenanceWorkMem: Int64 = 512 << 20

  /// Locks per commit when the restore is too big for one transaction (nil: one transaction).
  var commitEvery: Int?
  private var locksSinceCommit = 0

  /// The locks one transaction restoring the request's objects would hold, about: a table, its
  /// TOAST table and TOAST index; one for every other object (an index, a constraint's index, a
  /// sequence, a view, the table lock of a trigger or a comment).
  static func lockEstimate(_ request: RestoreRequest) -> Int {
    request.objects.reduce(0) { n, o in
      if let tables = request.tables, !(o.table.map(tables.contains) ?? false) { return n }
      return n + (["table", "foreign table", "materialized view"].contains(o.type) ? 3 : 1)
    }
  }

  /// PostgreSQL's shared lock table holds about max_locks_per_transaction × (max_connections +
  /// max_prepared_transactions) locks for all sessions, and a transaction that creates more
  /// relations than fit fails ("out of shared memory") after doing most of the work. When the
  /// estimate (`lockEstimate`) exceeds half of that: (need, capacity); else nil.
  static func tooManyLocks(_ db: PGConnection, _ request: RestoreRequest) throws -> (
    need: Int, capacity: Int
  )? {
    let need = lockEstimate(request)
    guard need > 1000,
      let row = try db.query(
        """
        SELECT pg_catalog.current_setting('max_locks_per_transaction')::bigint
          * (pg_catalog.current_setting('max_connections')::bigint
             + pg_catalog.current_setting('max_prepared_transactions')::bigint)
        """
      ).first, let capacity = row[0].flatMap({ Int($0) }), need > capacity / 2
    else { return nil }
    return (need, capacity)
  }

  static func batchNote(_ locks: (need: Int, capacity: Int)) -> String {
    "in several transactions: its objects need about \(locks.need) locks, more than one transaction may hold on this server (about \(locks.capacity) for all sessions: max_locks_per_transaction × max_connections); a failure drops again what it created"
  }

  /// A restore too big for one transaction's locks (`tooManyLocks`) commits its drops, schema and
  /// post-data parts in batches instead, each table in its own transaction, as `--jobs` does:
  /// true then, with a note saying so.
  func batchIfTooManyLocks() throws -> Bool {
    guard let locks = try PGRestoreSession.tooManyLocks(db, request) else { return false }
    commitEvery = max(64, locks.capacity / 4)
    report.notes.append("restored " + PGRestoreSession.batchNote(locks))
    return true
  }

  /// In a batched restore (`commitEvery`), commits once about that many locks are held.
  func commitIfBatchFull(locks: Int) throws {
    guard let every = commitEvery else { return }
    locksSinceCommit += locks
    guard locksSinceCommit >= every else { return }
    try db.query("COMMIT; BEGIN")
    locksSinceCommit = 0
  }

  func abortTransaction() {
    if PQtransactionStatus(db.conn) == PQTRANS_ACTIVE {
      _ = try? db.endCopyIn(failWith: "restore aborted")
    }
    _ = try? db.query("ROLLBACK")
  }

  /// Applies one part in the current transaction, reading it to its end (so its checksum is
  /// checked before anything commits).
  func apply(_ part: RestorePart, reader: InputReader) throws {
    switch part.kind {
    case .table:
      switch request.format {
      case .sql: try runTablePart(reader: reader, table: part.table)
      case .csv: try runCSVTablePart(reader: reader, table: part.table)
      case .json: try runJSONTablePart(reader: reader, table: part.table)
      }
    case .schema, .postData:
      try runScript(try PGPartLayout(format: request.format, mtime: 0).script(of: part.kind, from: reader))
    }
    var junk: [UInt8] = []
    while try reader.read(upTo: 1 << 20, appendingTo: &junk) > 0 { junk.removeAll(keepingCapacity: true) }
  }

  /// `--drop-existing`: drops the backup's relations the target has; otherwise refuses them.
  func dropConflicts(engine: PostgresEngine) throws {
    let conflicts = try engine.conflicts(db, request)
    guard !conflicts.isEmpty else { return }
    guard request.dropExisting else { throw engine.refuse(conflicts, endpoint: db.endpoint) }
    try drop(conflicts)
    for c in conflicts.prefix(20) { report.notes.append("dropped \(c.kind) \"\(c.name)\"") }
    if conflicts.count > 20 { report.notes.append("dropped \(conflicts.count - 20) more relations") }
  }

  func drop(_ relations: [PGConflict]) throws {
    for kind in ["materialized view", "view", "table", "foreign table", "sequence"] {
      for c in relations where c.kind == kind {
        let what = kind == "table" ? "TABLE" : kind.uppercased()
        try db.query("DROP \(what) IF EXISTS \(c.sql) CASCADE")
        try commitIfBatchFull(locks: 4)
      }
    }
  }

  func addNotes() {
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
        try commitIfBatchFull(locks: 3)
      }
    }
  }

  static let endOfData: [UInt8] = Array("\\.\n".utf8)

  /// Streams a table part's `COPY … FROM stdin;` block to the server.
  func runTablePart(reader: InputReader, table: String?) throws {
    guard let copyLine = try PGRestoreSession.copyStatement(reader, table: table) else { return }
    try streamCopy(copyLine, table: table, run: table.map { wants(table: $0) } ?? true) { send in
      var buffer: [UInt8] = []
      buffer.reserveCapacity(512 * 1024)
      var ended = false
      while !ended {
        buffer.removeAll(keepingCapacity: true)
        ended = try PGRestoreSession.nextRows(reader, into: &buffer, table: table)
        try send(buffer)
      }
    }
  }

  /// Runs one table's `copyLine` (`COPY … FROM stdin;`) and `feed`, which reads the table's rows
  /// to their end and hands them to `send` in whole lines: in the binary format when they
  /// convert (`PGBinaryCopy`), else as they are. A server error is a statement failure
  /// (`--continue-on-error` rolls back just this table). With `run` false the rows are read and
  /// dropped.
  func streamCopy(
    _ copyLine: [UInt8], table: String?, run: Bool, feed: (_ send: ([UInt8]) throws -> Void) throws -> Void
  ) throws {
    guard run else { return try feed { _ in } }
    let useSavepoint = request.continueOnError
    if useSavepoint { try db.query("SAVEPOINT ai_shell_copy") }
    var copy: PGCopyIn? = try startCopy(copyLine, table: table)
    var refused: PGStatementError?
    do {
      try feed { lines in
        guard copy != nil else { return }
        do {
          try send(lines, on: &copy!, table: table)
        } catch let e as PGCopyRefused {
          // the COPY has ended; the rows are still read to their end (the part's checksum checked)
          refused = e.error
          copy = nil
        }
      }
    } catch {
      if copy != nil { _ = try? db.endCopyIn(failWith: "restore aborted") }
      throw error
    }
    do {
      if let refused { throw refused }
      let rows = try endCopy(copy!)
      if useSavepoint { try db.query("RELEASE SAVEPOINT ai_shell_copy") }
      report.statementsExecuted += 1
      if let table { report.tables.append(TableRestoreResult(name: table, rows: rows)) }
    } catch let e as PGStatementError {
      if useSavepoint {
        try db.query("ROLLBACK TO SAVEPOINT ai_shell_copy; RELEASE SAVEPOINT ai_shell_copy")
      }
      try failed(e, object: table.map { SchemaObject(type: "data", name: $0, table: $0) })
    }
  }

  /// Runs a table part's `COPY … FROM stdin;` line: the connection is then ready for its rows.
  func beginCopy(_ copyLine: [UInt8], table: String?) throws {
    statementNumber += 1
    do {
      let st = try copyLine.withUnsafeBytes { try db.execRaw($0) }
      guard st == PGRES_COPY_IN else {
        throw BackupError(
          .corrupt, "the data part of \(table ?? "a table") does not start with COPY … FROM stdin")
      }
    } catch let e as PGStatementError {
      throw BackupError(
        .database, "statement \(statementNumber) (COPY \(table ?? "")) failed: \(e.message)")
    }
  }

  /// A line's text from its first non-blank byte; nil for a blank or `--` comment line.
  static func content(of line: [UInt8]) -> ArraySlice<UInt8>? {
    guard let first = line.firstIndex(where: { !PGText.isBlank([$0][...]) }) else { return nil }
    return line[first...].starts(with: [0x2D, 0x2D]) ? nil : line[first...]
  }

  /// Reads a table part of the sql format up to and including its `COPY … FROM stdin;` line
  /// (skipping the marker and blank lines) and returns that line; nil for a part without rows
  /// (no COPY at all). Anything else before it is a corrupt part.
  static func copyStatement(_ reader: InputReader, table: String?) throws -> [UInt8]? {
    var line: [UInt8] = []
    while try reader.readLine(into: &line) {
      guard let text = content(of: line) else { continue }
      guard text.starts(with: Array("COPY ".utf8)) else { break }
      return Array(text)
    }
    guard line.isEmpty else {
      throw BackupError(.corrupt, "unexpected text in the data part of \(table ?? "a table")")
    }
    return nil
  }

  /// Appends the next rows (whole lines, about 256 KiB) of a COPY block to `buffer`; returns
  /// true at its end (`\.`), after checking that only blank or comment lines follow. A part that ends
  /// before `\.` is truncated.
  static func nextRows(_ reader: InputReader, into buffer: inout [UInt8], table: String?) throws -> Bool {
    let limit = 256 * 1024
    if try reader.appendLines(upTo: limit, to: &buffer, until: endOfData) {
      var line: [UInt8] = []
      while try reader.readLine(into: &line) {
        guard content(of: line) == nil else {
          throw BackupError(.corrupt, "unexpected text after the data of \(table ?? "a table")")
        }
      }
      return true
    }
    guard buffer.count >= limit else {
      throw BackupError(
        .corrupt, "the data of \(table ?? "a table") ends without \\.", hint: "the backup is truncated")
    }
    return false
  }
}

extension RestoreRequest {
  /// A PostgreSQL restore loads tables on several connections when `--jobs` asks for it and
  /// there are at least two tables to load.
  var isParallel: Bool {
    jobs > 1 && parts.filter { $0.kind == .table && (tables?.contains($0.table ?? "") ?? true) }.count > 1
  }
}

extension PGRestoreSession {
  /// Runs `COPY <table> (<columns>) FROM STDIN <options>` and `feed` (which reads the rows and
  /// hands them to `send`) through `streamCopy`: without options (text-format lines) in the
  /// binary format when the rows convert.
  func copyIn(
    table: String, columns: [String], options: String, feed: (_ send: ([UInt8]) throws -> Void) throws -> Void
  ) throws {
    guard let target = try db.quotedTable(table) else {
      throw BackupError(.database, "table \"\(table)\" was not created by the backup's schema")
    }
    let cols = columns.isEmpty ? "" : " (" + columns.map(quoteIdent).joined(separator: ", ") + ")"
    try streamCopy(
      Array("COPY \(target)\(cols) FROM stdin\(options);".utf8), table: table, run: true, feed: feed)
  }

  /// A csv table part: one tar entry whose csv (after its header row) goes to the server as is.
  func runCSVTablePart(reader: InputReader, table: String?) throws {
    guard let table else { throw BackupError(.corrupt, "a table part of this backup names no table") }
    guard let entry = try Tar.readHeader(from: reader) else {
      throw BackupError(.corrupt, "the data part of \(table) has no tar entry")
    }
    let (names, used) = try CSVHeaderReader.read(reader, limit: entry.size, table: table)
    var left = entry.size - used
    func readCSV(_ body: (([UInt8]) throws -> Void)) throws {
      var buffer: [UInt8] = []
      while left > 0 {
        buffer.removeAll(keepingCapacity: true)
        let n = try reader.read(upTo: Int(min(left, 256 * 1024)), appendingTo: &buffer)
        guard n > 0 else { throw BackupError(.corrupt, "the csv data of \(table) is truncated") }
        left -= Int64(n)
        try body(buffer)
      }
    }
    if wants(table: table) {
      try copyIn(table: table, columns: names, options: " WITH (FORMAT csv)") { try readCSV($0) }
    } else {
      try readCSV { _ in }
    }
    try reader.skip(Tar.paddingCount(for: entry.size))
  }

  struct JSONTableHeader: Decodable {
    struct Column: Decodable { var name: String }
    var table: String
    var columns: [Column]
    enum CodingKeys: String, CodingKey {
      case table = "$table"
      case columns
    }
  }

  /// A json table part: a header line, then one object per row, sent as text-format COPY lines.
  func runJSONTablePart(reader: InputReader, table: String?) throws {
    guard let table else { throw BackupError(.corrupt, "a table part of this backup names no table") }
    var line: [UInt8] = []
    guard try reader.readLine(into: &line),
      let header = try? JSONDecoder().decode(JSONTableHeader.self, from: Data(line))
    else { throw BackupError(.corrupt, "the data part of \(table) does not start with its $table header") }
    guard wants(table: table) else { return }
    var rows = PGJSONRowReader(table: table, columns: header.columns.map(\.name))
    try copyIn(table: table, columns: header.columns.map(\.name), options: "") { send in
      var buffer: [UInt8] = []
      buffer.reserveCapacity(300 * 1024)
      while try reader.readLine(into: &line) {
        guard line.contains(where: { !PGText.isBlank([$0][...]) }) else { continue }
        try rows.convert(line, into: &buffer)
        if buffer.count >= 256 * 1024 {
          try send(buffer)
          buffer.removeAll(keepingCapacity: true)
        }
      }
      try send(buffer)
    }
  }

  /// `--jobs N` (docs/ARCHITECTURE.md, "Parallel PostgreSQL restores"): the drops and the schema
  /// part commit first; then `jobs` connections load the table parts, each table in its own
  /// transaction; then the post-data part (indexes, constraints, triggers, sequence values)
  /// commits. On a failure after the schema committed, the relations of the backup are dropped
  /// again (the whole database when the restore created it) and the error says so.
  func runParallel(engine: PostgresEngine, parts: PGLockedOpener, info: ConnInfo, createdDatabase: Bool)
    throws
  {
    try db.query("SET lock_timeout = \(max(1, Int(request.lockTimeoutSeconds * 1000)))")
    try raiseMaintenanceWorkMem()
    try db.query("BEGIN")
    let tableIndices = request.parts.indices.filter { request.parts[$0].kind == .table }
    var dropped = false
    do {
      try dropConflicts(engine: engine)
      dropped = true
      for (i, part) in request.parts.enumerated() where part.kind == .schema {
        try apply(part, reader: InputReader(try parts.open(i)))
      }
      try db.query("COMMIT")
    } catch {
      abortTransaction()
      // in one transaction (not batched) the failure has left nothing behind; in batches, the
      // relations it created are dropped again (once the existing ones are dropped: before, the
      // relations there are the target's own)
      guard commitEvery != nil, dropped else { throw error }
      throw undoCreated(engine: engine, createdDatabase: createdDatabase, after: error)
    }
    do {
      let encoding = (try db.query("SHOW client_encoding").first?.first ?? nil) ?? "UTF8"
      try loadTablesInParallel(tableIndices, parts: parts, info: info, encoding: encoding)
      try db.query("BEGIN")
      for (i, part) in request.parts.enumerated() where part.kind == .postData {
        try apply(part, reader: InputReader(try parts.open(i)))
      }
      try db.query("COMMIT")
    } catch {
      abortTransaction()
      throw undoCreated(engine: engine, createdDatabase: createdDatabase, after: error)
    }
    addNotes()
    report.notes.append(
      request.jobs > 1
        ? "tables loaded on \(request.jobs) connections, each in its own transaction"
        : "tables loaded each in its own transaction")
  }

  /// After a failure of a restore in several transactions, drops the backup's relations the
  /// target now has (it refused or dropped them all before it began) and returns the error to
  /// throw, which says so; a database the restore created is dropped whole by `restoreImpl`.
  func undoCreated(engine: PostgresEngine, createdDatabase: Bool, after error: Error) -> Error {
    guard !createdDatabase else { return error }
    let undone: String
    do {
      try db.query("BEGIN")
      let created = try engine.conflicts(db, request)
      try drop(created)
      try db.query("COMMIT")
      undone = "the \(created.count) relations this restore had created were dropped again"
    } catch {
      abortTransaction()
      undone = "dropping the relations it had created failed too (\(oneLine("\(error)")))"
    }
    let message = (error as? BackupError)?.message ?? "\(error)"
    let how =
      request.jobs > 1 ? "parallel restore (--jobs \(request.jobs))" : "restore in several transactions"
    return BackupError(
      (error as? BackupError)?.status ?? .database, "\(how) failed: \(message); \(undone)",
      hint:
        "schemas, types, functions and extensions it created are left; objects --drop-existing dropped are not brought back"
    )
  }

  /// Loads the given table parts on up to `jobs` connections, the biggest first; a big table of
  /// the sql format is split over several connections (`PGSplitCopy`).
  func loadTablesInParallel(_ indices: [Int], parts: PGLockedOpener, info: ConnInfo, encoding: String) throws
  {
    let request = self.request
    let ordered = indices.enumerated().sorted {
      let (a, b) = (request.parts[$0.element].rawSize ?? 0, request.parts[$1.element].rawSize ?? 0)
      return a != b ? a > b : $0.offset < $1.offset
    }.map(\.element)
    var items: [PGLoadItem] = []
    for i in ordered {
      let part = request.parts[i]
      if request.format == .sql, request.jobs > 1, !request.continueOnError, let size = part.rawSize,
        size >= request.splitTableBytes, let table = part.table, wants(table: table)
      {
        let streams = max(2, min(Int64(request.jobs), size / max(1, request.splitTableBytes / 2)))
        let split = PGSplitCopy(open: { try parts.open(i) }, table: table, streams: Int(streams))
        items += (0..<split.streams).map { _ in PGLoadItem(index: i, split: split) }
      } else {
        items.append(PGLoadItem(index: i, split: nil))
      }
    }
    let queue = PGWorkQueue(items)
    let results = PGResults()
    let lockMillis = max(1, Int(request.lockTimeoutSeconds * 1000))
    runThreads(min(request.jobs, items.count)) { _ in
      var session: PGRestoreSession?
      while let item = queue.next() {
        do {
          if session == nil {
            let c = try PGConnection(info)
            // each table commits without waiting for its WAL to reach the disk (thousands of
            // small tables would wait for thousands of flushes): the restore reports success
            // only after the post-data part's commit, which waits, and flushing its commit
            // record flushes every earlier one
            try c.query(
              "SET client_encoding = '\(encoding)'; SET lock_timeout = \(lockMillis); SET row_security = off; SET statement_timeout = 0; SET synchronous_commit = off"
            )
            session = PGRestoreSession(db: c, request: request)
          }
          let s = session!
          try s.db.query("BEGIN")
          do {
            if let split = item.split {
              try s.loadStream(of: split)
            } else {
              try s.apply(request.parts[item.index], reader: InputReader(try parts.open(item.index)))
            }
            try s.db.query("COMMIT")
          } catch {
            item.split?.fail(error)
            s.abortTransaction()
            throw error
          }
        } catch {
          results.fail(error)
          queue.stop()
          return
        }
      }
      if let s = session { results.add(s.report) }
    }
    if let e = results.failure { throw e }
    var rows: [String: Int64] = [:]
    for r in results.reports {
      report.statementsExecuted += r.statementsExecuted
      report.statementsFailed += r.statementsFailed
      report.errors += r.errors.prefix(max(0, 10 - report.errors.count))
      for t in r.tables { rows[t.name, default: 0] += t.rows }
    }
    // a split table's streams each reported their share of its rows; report each table once
    report.tables += request.parts.compactMap { p in
      p.table.flatMap { name in
        rows.removeValue(forKey: name).map { TableRestoreResult(name: name, rows: $0) }
      }
    }
  }

  /// One connection's share of a split table: the part's own COPY statement, then chunks of its
  /// rows until they run out. COMMIT waits (in the caller) until the whole part has been read and
  /// its checksum checked: `waitVerified` returns only then.
  func loadStream(of split: PGSplitCopy) throws {
    guard let copyLine = try split.copyStatement() else { return }
    var copy = try startCopy(copyLine, table: split.table)
    do {
      var chunk: [UInt8] = []
      chunk.reserveCapacity(512 * 1024)
      do {
        while try split.next(into: &chunk) { try send(chunk, on: &copy, table: split.table) }
      } catch let e as PGCopyRefused {
        throw e.error
      } catch {
        _ = try? db.endCopyIn(failWith: "restore aborted")
        throw error
      }
      let rows = try endCopy(copy)
      try split.waitVerified()
      report.statementsExecuted += 1
      report.tables.append(TableRestoreResult(name: split.table, rows: rows))
    } catch let e as PGStatementError {
      throw BackupError(.database, "statement \(statementNumber) (COPY \(split.table)) failed: \(e.message)")
    }
  }
}

/// A unit of a parallel restore: a table part, or one connection's share of a split one.
struct PGLoadItem: Sendable {
  var index: Int
  var split: PGSplitCopy?
}

/// One big table part of the sql format loaded over several connections at once
/// (docs/ARCHITECTURE.md, "Parallel PostgreSQL restores"): every connection runs the part's own
/// `COPY … FROM stdin` and takes the rows in chunks of whole lines (about 256 KiB) as it asks
/// for them, so the server parses and inserts on every connection while the part is read once,
/// by one thread at a time. The part is read to its end (its checksum checked) before any
/// stream may commit.
final class PGSplitCopy: @unchecked Sendable {
  private let cond = NSCondition()
  private let openPart: () throws -> ByteSource
  private var reader: InputReader?
  private var statement: [UInt8]??
  private var ended = false
  private var failure: Error?
  let table: String
  let streams: Int

  init(open: @escaping () throws -> ByteSource, table: String, streams: Int) {
    openPart = open
    self.table = table
    self.streams = streams
  }

  /// The part's `COPY … FROM stdin;` line (read once), or nil for a part without one.
  func copyStatement() throws -> [UInt8]? {
    cond.lock()
    defer { cond.unlock() }
    if let failure { throw failure }
    if let statement { return statement }
    do {
      let r = InputReader(try openPart())
      reader = r
      let line = try PGRestoreSession.copyStatement(r, table: table)
      statement = .some(line)
      if line == nil { try finishReading(r) }
      return line
    } catch {
      failLocked(error)
      throw error
    }
  }

  /// Replaces `chunk` with the next rows; false (and `chunk` empty) when there are none left.
  func next(into chunk: inout [UInt8]) throws -> Bool {
    chunk.removeAll(keepingCapacity: true)
    cond.lock()
    defer { cond.unlock() }
    if let failure { throw failure }
    guard !ended, let reader else { return false }
    do {
      if try PGRestoreSession.nextRows(reader, into: &chunk, table: table) { try finishReading(reader) }
    } catch {
      failLocked(error)
      throw error
    }
    return !chunk.isEmpty || !ended
  }

  /// Returns once the whole part has been read and checked; throws what stopped it otherwise.
  func waitVerified() throws {
    cond.lock()
    defer { cond.unlock() }
    while !ended && failure == nil { cond.wait() }
    if let failure { throw failure }
  }

  func fail(_ error: Error) {
    cond.lock()
    failLocked(error)
    cond.unlock()
  }

  private func failLocked(_ error: Error) {
    if failure == nil { failure = error }
    cond.broadcast()
  }

  /// Reads the rest of the part (its checksum is checked at its end) and wakes the waiters.
  private func finishReading(_ r: InputReader) throws {
    var junk: [UInt8] = []
    while try r.read(upTo: 1 << 20, appendingTo: &junk) > 0 { junk.removeAll(keepingCapacity: true) }
    ended = true
    cond.broadcast()
  }
}

/// Work items handed out to worker threads in order.
final class PGWorkQueue: @unchecked Sendable {
  private let lock = NSLock()
  private var items: [PGLoadItem]
  private var at = 0
  init(_ items: [PGLoadItem]) { self.items = items }
  func next() -> PGLoadItem? {
    lock.withLock {
      guard at < items.count else { return nil }
      at += 1
      return items[at - 1]
    }
  }
  func stop() { lock.withLock { at = items.count } }
}

/// What the restore workers report back.
final class PGResults: @unchecked Sendable {
  private let lock = NSLock()
  private(set) var reports: [RestoreReport] = []
  private(set) var failure: Error?
  func add(_ r: RestoreReport) { lock.withLock { reports.append(r) } }
  func fail(_ e: Error) { lock.withLock { if failure == nil { failure = e } } }
}
