import BackupModel
import Foundation

/// Splitting of the SQL scripts ai-shell writes for MySQL/MariaDB as the `mariadb` client splits
/// them: statements end at the current delimiter outside quotes ('…', "…" with backslash escapes
/// and doubled quotes, `…`) and comments (`-- `, `#`, `/* */`); `DELIMITER x` lines at a statement
/// boundary change the delimiter.
enum MyText {
  enum Piece {
    /// A comment or blank line at a statement boundary (with its line end).
    case line(Range<Int>)
    /// A statement without its delimiter.
    case statement(Range<Int>)
  }

  static func lineEnd(_ b: [UInt8], from i: Int) -> Int {
    var j = i
    while j < b.count && b[j] != 0x0A { j += 1 }
    return j < b.count ? j + 1 : j
  }

  static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D }

  /// The index where `delimiter` ends the statement starting at `start`, or nil.
  static func statementEnd(_ b: [UInt8], from start: Int, delimiter d: [UInt8]) -> Int? {
    let n = b.count
    var i = start
    while i < n {
      let c = b[i]
      switch c {
      case 0x27, 0x22, 0x60:  // ' " `
        i += 1
        while i < n {
          if b[i] == 0x5C && c != 0x60 {
            i += 2
            continue
          }
          if b[i] == c {
            if i + 1 < n && b[i + 1] == c {
              i += 2
              continue
            }
            break
          }
          i += 1
        }
        i += 1
      case 0x2D where i + 2 < n && b[i + 1] == 0x2D && isSpace(b[i + 2]):  // "-- "
        while i < n && b[i] != 0x0A { i += 1 }
      case 0x23:  // #
        while i < n && b[i] != 0x0A { i += 1 }
      case 0x2F where i + 1 < n && b[i + 1] == 0x2A:  // /* */
        i += 2
        while i + 1 < n && !(b[i] == 0x2A && b[i + 1] == 0x2F) { i += 1 }
        i += 2
      default:
        if c == d[0] && i + d.count <= n && b[i..<(i + d.count)].elementsEqual(d) { return i }
        i += 1
      }
    }
    return nil
  }

  static func startsWithWord(_ b: ArraySlice<UInt8>, _ word: String) -> Bool {
    let w = Array(word.utf8)
    guard b.count >= w.count else { return false }
    return zip(b.prefix(w.count), w).allSatisfy { a, c in a == c || (a >= 0x61 && a <= 0x7A && a - 0x20 == c)
    }
  }

  static func pieces(_ b: [UInt8]) throws -> [Piece] {
    var out: [Piece] = []
    var delimiter: [UInt8] = [0x3B]
    var i = 0
    while i < b.count {
      let e = lineEnd(b, from: i)
      var first = i
      while first < e && (b[first] == 0x20 || b[first] == 0x09) { first += 1 }
      let rest = b[first..<e]
      if rest.allSatisfy(isSpace) || rest.starts(with: [0x2D, 0x2D]) || rest.starts(with: [0x23]) {
        out.append(.line(i..<e))
        i = e
        continue
      }
      if startsWithWord(rest, "DELIMITER ") {
        let d = Array(rest.dropFirst(10).drop(while: { $0 == 0x20 })).filter { !isSpace($0) }
        guard !d.isEmpty else { throw BackupError(.corrupt, "DELIMITER line without a delimiter") }
        delimiter = d
        out.append(.line(i..<e))
        i = e
        continue
      }
      guard let end = statementEnd(b, from: first, delimiter: delimiter) else {
        throw BackupError(
          .corrupt, "backup part ends inside an SQL statement", hint: "the backup is truncated")
      }
      out.append(.statement(first..<end))
      i = lineEnd(b, from: end)
    }
    return out
  }
}

/// An object of the backup found in the restore target.
struct MyConflict {
  var type: String  // table, view, sequence, procedure, function, event
  var name: String
  var dropSQL: String {
    "DROP \(type.uppercased()) IF EXISTS \(myIdent(name))"
  }
}

extension MariaDBEngine {
  /// The backup's objects (that this request restores) which the target already has.
  func conflicts(_ db: MyConnection, _ request: RestoreRequest) throws -> [MyConflict] {
    let tables = try request.restoredTables()
    var wanted: Set<String> = []
    for t in tables { wanted.insert("table\u{0}\(t)") }
    if request.tables == nil {
      for o in request.objects where ["view", "procedure", "function", "event", "sequence"].contains(o.type) {
        wanted.insert("\(o.type)\u{0}\(o.name)")
      }
    }
    var existing: [MyConflict] = []
    for r in try db.query(
      "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME"
    ) {
      guard let name = r[0] else { continue }
      let type = r[1] == "VIEW" ? "view" : r[1] == "SEQUENCE" ? "sequence" : "table"
      // tables, views and sequences share one namespace: any of them in the backup conflicts
      if ["table", "view", "sequence"].contains(where: { wanted.contains("\($0)\u{0}\(name)") }) {
        existing.append(MyConflict(type: type, name: name))
      }
    }
    for r in try db.query(
      "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE() ORDER BY 2"
    ) {
      guard let type = r[0]?.lowercased(), let name = r[1], wanted.contains("\(type)\u{0}\(name)") else {
        continue
      }
      existing.append(MyConflict(type: type, name: name))
    }
    for r in try db.query(
      "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE() ORDER BY 1")
    {
      guard let name = r[0], wanted.contains("event\u{0}\(name)") else { continue }
      existing.append(MyConflict(type: "event", name: name))
    }
    return existing
  }

  func refuse(_ c: [MyConflict], endpoint: String) -> BackupError {
    let more = c.count > 1 ? " (and \(c.count - 1) more)" : ""
    return BackupError(
      .refused, "target \(endpoint) already has \(c[0].type) \"\(c[0].name)\"\(more)",
      hint: "use --drop-existing to replace them")
  }

  func checkRestoreImpl(_ request: RestoreRequest) throws -> [String] {
    let name = try databaseName
    let tables = try request.restoredTables()
    var notes: [String] = []
    do {
      let db = try connect()
      let c = try conflicts(db, request)
      if !c.isEmpty && !request.dropExisting { throw refuse(c, endpoint: db.endpoint) }
      for x in c { notes.append("would drop \(x.type) \"\(x.name)\"") }
    } catch let e as BackupError where e.status == .notFound {
      _ = try connect(selectDatabase: false)
      notes.append(
        "would create database \"\(name)\""
          + (request.creation.map {
            " with the source's character set \($0.encoding) and collation \($0.lcCollate)"
          }
            ?? ""))
    }
    notes.append("would restore \(tables.count) table\(tables.count == 1 ? "" : "s")")
    if request.tables != nil { notes.append("views, routines and events are skipped: --tables given") }
    return notes
  }

  /// Creates the restore's target with the source database's default character set and
  /// collation (the manifest's `database.creation`), as mysqldump --databases would; a server that
  /// lacks them (an older one, another product) gets utf8mb4 and the note says why. Returns the
  /// note.
  func createDatabase(_ name: String, like source: Manifest.DatabaseCreation?, on db: MyConnection) throws
    -> String
  {
    var refused = ""
    if let c = source {
      do {
        try db.exec(
          "CREATE DATABASE \(myIdent(name)) CHARACTER SET \(myString(c.encoding)) COLLATE \(myString(c.lcCollate))"
        )
        return
          "created database \"\(name)\" with the source's character set \(c.encoding) and collation \(c.lcCollate)"
      } catch let e as BackupError where e.status == .database {
        refused =
          " with character set utf8mb4: the server refused the source's \(c.encoding) / \(c.lcCollate) (\(oneLine(e.message)))"
      }
    }
    try db.exec("CREATE DATABASE \(myIdent(name)) CHARACTER SET utf8mb4")
    return "created database \"\(name)\"" + refused
  }

  func restoreImpl(_ request: RestoreRequest, parts: PartOpener) throws -> RestoreReport {
    let name = try databaseName
    _ = try request.restoredTables()
    let db = try connect(selectDatabase: false)
    var created = false
    let exists = try !db.query(
      "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = \(myString(name))"
    ).isEmpty
    var createdNote = ""
    if !exists {
      createdNote = try createDatabase(name, like: request.creation, on: db)
      created = true
    }
    let session = MyRestoreSession(db: db, request: request)
    do {
      try db.exec("USE \(myIdent(name))")
      if created { session.report.notes.append(createdNote) }
      try session.run(engine: self, parts: parts)
      return session.report
    } catch {
      // DDL commits on its own in MySQL: undo by dropping what this restore created
      _ = try? db.exec("ROLLBACK")
      if created {
        _ = try? db.exec("DROP DATABASE IF EXISTS \(myIdent(name))")
      } else {
        session.dropCreated()
      }
      throw error
    }
  }
}

/// One restore: the connection, what it created, the report.
final class MyRestoreSession {
  let db: MyConnection
  let request: RestoreRequest
  var report = RestoreReport()
  var statementNumber = 0
  /// Objects this restore created, in creation order (dropped again if it fails).
  var created: [MyConflict] = []
  var skipped = 0
  /// Bytes of row statements executed since the last COMMIT.
  var uncommitted = 0

  static let markerPrefix = Array(Bytes.markerPrefix.utf8)

  init(db: MyConnection, request: RestoreRequest) {
    self.db = db
    self.request = request
  }

  /// The session every restore connection uses: the dump's settings, checks off during the load.
  func configureSession() throws {
    try db.exec(
      "SET NAMES utf8mb4, time_zone = '+00:00', FOREIGN_KEY_CHECKS = 0, UNIQUE_CHECKS = 0, sql_mode = 'NO_AUTO_VALUE_ON_ZERO', net_read_timeout = 3600, net_write_timeout = 3600, wait_timeout = 86400"
    )
    try db.exec("SET SESSION lock_wait_timeout = \(max(1, Int(request.lockTimeoutSeconds.rounded(.up))))")
  }

  func run(engine: MariaDBEngine, parts: PartOpener) throws {
    try configureSession()
    let conflicts = try engine.conflicts(db, request)
    if !conflicts.isEmpty {
      guard request.dropExisting else { throw engine.refuse(conflicts, endpoint: db.endpoint) }
      for c in conflicts {
        try db.exec(c.dropSQL)
        report.notes.append("dropped \(c.type) \"\(c.name)\"")
      }
    }
    let tableParts = request.parts.indices.filter { request.parts[$0].kind == .table }
    if request.jobs > 1 && tableParts.count > 1 {
      // --jobs N: the schema first, then the tables over N connections, then the post-data
      for (i, part) in request.parts.enumerated() where part.kind == .schema {
        try runScript(try script(of: InputReader(try parts.open(i)), format: request.format))
      }
      try MyParallelRestore(session: self, engine: engine, tableParts: tableParts).run(parts: parts)
      for (i, part) in request.parts.enumerated() where part.kind == .postData {
        try runScript(try script(of: InputReader(try parts.open(i)), format: request.format))
      }
    } else {
      for (i, part) in request.parts.enumerated() {
        let reader = InputReader(try parts.open(i))
        switch part.kind {
        case .table: try loadTable(reader: reader, table: part.table)
        case .schema, .postData: try runScript(try script(of: reader, format: request.format))
        }
      }
    }
    try db.exec("SET FOREIGN_KEY_CHECKS = 1, UNIQUE_CHECKS = 1")
    if skipped > 0 { report.notes.append("\(skipped) views, routines and events skipped: --tables given") }
  }

  /// Loads one table part in transactions of about 16 MiB of statements (one huge transaction
  /// costs InnoDB's undo log and, with row-based binary logging, a spilled binlog cache copied
  /// at commit). Every table a restore loads is one it created, and any failure drops what it
  /// created, so no partial table survives a failed restore (a corrupt part is found at its end,
  /// where its SHA-256 is checked).
  func loadTable(reader: InputReader, table: String?) throws {
    uncommitted = 0
    try db.exec("SET autocommit = 0")
    switch request.format {
    case .sql: try runTablePart(reader: reader, table: table)
    case .json: try runJSONTablePart(reader: reader, table: table)
    case .csv: try runCSVTablePart(reader: reader, table: table)
    }
    try drain(reader)
    try db.exec("COMMIT")
    try db.exec("SET autocommit = 1")
  }

  /// Counts executed row statements and commits every ~16 MiB (see `loadTable`).
  func loaded(bytes: Int) throws {
    uncommitted += bytes
    if uncommitted >= 16 << 20 {
      try db.exec("COMMIT")
      uncommitted = 0
    }
  }

  /// On failure: drop what this restore created, newest first (triggers go with their tables).
  func dropCreated() {
    _ = try? db.exec("SET FOREIGN_KEY_CHECKS = 0")
    for c in created.reversed() { _ = try? db.exec(c.dropSQL) }
  }

  func wants(object o: SchemaObject?) -> Bool {
    guard let tables = request.tables, let o else { return true }
    if let t = o.table { return tables.contains(t) }
    skipped += 1
    return false
  }

  func failed(_ e: MyStatementError, object: SchemaObject?) throws {
    let what = object.map { " (\($0.type) \($0.name))" } ?? ""
    // 1419: creating a trigger or stored function without SUPER while binary logging is on
    let error = BackupError(
      .database, "statement \(statementNumber)\(what) failed: \(e.message)",
      hint: e.code == 1419
        ? "restore as a user with SUPER, or set log_bin_trust_function_creators=1 on the target server" : nil)
    guard request.continueOnError else { throw error }
    report.statementsFailed += 1
    if report.errors.count < 10 { report.errors.append(oneLine(error.message)) }
  }

  func parseMarker(_ line: ArraySlice<UInt8>) throws -> SchemaObject? {
    var first = line.startIndex
    while first < line.endIndex && (line[first] == 0x20 || line[first] == 0x09) { first += 1 }
    guard line[first...].starts(with: MyRestoreSession.markerPrefix) else { return nil }
    let json = line[(first + MyRestoreSession.markerPrefix.count)...]
    do {
      return try JSONDecoder().decode(SchemaObject.self, from: Data(json))
    } catch {
      throw BackupError(.corrupt, "bad object marker in backup: \(String(decoding: json, as: UTF8.self))")
    }
  }

  /// Runs a schema or post-data part statement by statement.
  func runScript(_ b: [UInt8]) throws {
    var object: SchemaObject?
    var objectCreated = false
    for piece in try MyText.pieces(b) {
      switch piece {
      case .line(let r):
        if let o = try parseMarker(b[r]) {
          object = o
          objectCreated = false
        }
      case .statement(let r):
        guard wants(object: object) else { continue }
        statementNumber += 1
        do {
          try b[r].withUnsafeBytes { _ = try db.execRaw($0) }
          report.statementsExecuted += 1
          if let o = object, !objectCreated, MyText.startsWithWord(b[r], "CREATE "),
            ["table", "view", "sequence", "procedure", "function", "event"].contains(o.type)
          {
            created.append(MyConflict(type: o.type, name: o.name))
            objectCreated = true
          }
        } catch let e as MyStatementError {
          try failed(e, object: object)
        }
      }
    }
  }

  /// A table part: one `INSERT … VALUES …;` (or `REPLACE …;`) per line (no newline inside one).
  func runTablePart(reader: InputReader, table: String?) throws {
    let run = table.map { request.tables?.contains($0) ?? true } ?? true
    var line: [UInt8] = []
    var rows: Int64 = 0
    var sawInsert = false
    while try reader.readLine(into: &line) {
      var end = line.count
      while end > 0 && MyText.isSpace(line[end - 1]) { end -= 1 }
      if end == 0 || line.starts(with: [0x2D, 0x2D]) { continue }
      // ours write INSERT INTO; imported dumps may have INSERT IGNORE (--insert-ignore) or REPLACE
      guard line[end - 1] == 0x3B,
        MyText.startsWithWord(line[...], "INSERT ") || MyText.startsWithWord(line[...], "REPLACE ")
      else {
        throw BackupError(
          .corrupt, "unexpected text in the data part of \(table ?? "a table")",
          hint: "the backup is truncated or damaged")
      }
      sawInsert = true
      guard run else { continue }
      statementNumber += 1
      do {
        rows += try line[..<(end - 1)].withUnsafeBytes { try db.execRaw($0) }
        report.statementsExecuted += 1
        try loaded(bytes: end)
      } catch let e as MyStatementError {
        try failed(e, object: table.map { SchemaObject(type: "data", name: $0, table: $0) })
      }
    }
    _ = sawInsert
    if run, let table { report.tables.append(TableRestoreResult(name: table, rows: rows)) }
  }
}
