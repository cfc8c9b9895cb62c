import BackupModel
import Crypto
import Foundation

/// The PostgreSQL content checksum of one table (docs/FORMAT.md, "PostgreSQL"): independent of
/// row order, so the dump can stream `COPY t TO STDOUT` in heap order (as pg_dump does) and a
/// restored table, scanned in whatever order, gives the same value. Each row's COPY text line
/// (text format, with its "\n", under the fixed output settings of `setStableOutput`) is hashed
/// with XXH3-128 (a fraction of SHA-256's cost per row; tampering is the parts' SHA-256's job);
/// the hashes are added as 128-bit little-endian integers modulo 2^128; the result is SHA-256 of
/// the domain ("ai-shell-pg-rows-v2"), the row count (8 bytes little-endian) and the sum (16 bytes
/// little-endian).
struct RowSetChecksum {
  private var sum: (low: UInt64, high: UInt64) = (0, 0)
  private(set) var rows: Int64 = 0
  /// Domain-separation prefix of the final hash (each engine's checksums have their own).
  var domain = "ai-shell-pg-rows-v2"

  mutating func add(_ line: UnsafeRawBufferPointer) {
    let h = XXH128.hash(line)
    let (low, carry) = sum.low.addingReportingOverflow(h.low)
    sum.low = low
    sum.high = sum.high &+ h.high &+ (carry ? 1 : 0)
    rows += 1
  }

  func finalizeHex() -> String {
    var h = SHA256()
    h.update(data: Array(domain.utf8))
    var n = UInt64(bitPattern: rows).littleEndian
    withUnsafeBytes(of: &n) { h.update(bufferPointer: $0) }
    var s = (sum.low.littleEndian, sum.high.littleEndian)
    withUnsafeBytes(of: &s) { h.update(bufferPointer: $0) }
    return h.finalize().map { String(format: "%02x", $0) }.joined()
  }
}

/// What the dump decided before writing.
struct PGDumpPlan {
  /// Tables whose rows are dumped (ordinary tables and leaf partitions), sorted.
  var dataTables: [PGTable]
  /// Every table of the backup (data tables and partitioned parents).
  var tables: [PGTable]
  var selective: Bool
}

extension PostgresEngine {
  func connect() throws -> PGConnection {
    try PGConnection(try ConnInfo(url))
  }

  /// Chooses the tables (`--tables` takes exact "schema.table" names; a bare name means
  /// "public.name"); a partitioned table brings its partitions.
  func plan(_ db: PGConnection, wanted: [String]?) throws -> PGDumpPlan {
    let all = try db.userTables()
    guard let wanted else {
      return PGDumpPlan(dataTables: all.filter { $0.kind == "r" }, tables: all, selective: false)
    }
    let byName = Dictionary(all.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    let byOid = Dictionary(all.map { ($0.oid, $0) }, uniquingKeysWith: { a, _ in a })
    var chosen: [String: PGTable] = [:]
    for w in wanted {
      guard let t = byName[w] ?? byName["public." + w] else {
        throw BackupError(
          .notFound, "table \"\(w)\" does not exist in PostgreSQL database \(db.endpoint)",
          hint: "name tables as schema.table; the database has: "
            + all.prefix(20).map(\.name).joined(separator: ", ") + (all.count > 20 ? ", …" : ""))
      }
      chosen[t.oid] = t
      if t.kind == "p" {
        for oid in try db.leafPartitions(oid: t.oid) { if let p = byOid[oid] { chosen[oid] = p } }
      }
    }
    let tables = all.filter { chosen[$0.oid] != nil }
    return PGDumpPlan(dataTables: tables.filter { $0.kind == "r" }, tables: tables, selective: true)
  }

  func dumpImpl(options: DumpOptions, to sink: PartSink) throws -> DumpResult {
    guard options.format == .sql else {
      throw BackupError(
        .usage, "PostgreSQL backups support --format sql only in this version",
        hint: "csv and json for PostgreSQL are not implemented yet")
    }
    let db = try connect()
    try db.setStableOutput()
    let lockMillis = max(1, Int(options.lockTimeoutSeconds * 1000))
    try db.query("SET lock_timeout = \(lockMillis)")
    try db.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    guard let snapshot = try db.query("SELECT pg_catalog.pg_export_snapshot()").first?.first ?? nil else {
      throw BackupError(.database, "PostgreSQL at \(db.endpoint): pg_export_snapshot() returned nothing")
    }
    let serverVersion = ((try db.query("SHOW server_version").first?.first) ?? nil) ?? "?"
    let sizeBytes =
      (try db.query("SELECT pg_catalog.pg_database_size(current_database())").first?.first ?? nil)
      .flatMap { Int64($0) }
    let pgDump = try PGDumpTool.find(serverVersionNumber: db.serverVersionNumber)
    let plan = try plan(db, wanted: options.tables)
    // hold ACCESS SHARE on every dumped table for the whole dump: no DROP/ALTER can slip in
    // between pg_dump's catalog reads and our COPYs
    if !plan.tables.isEmpty {
      do {
        try db.query("LOCK TABLE \(plan.tables.map(\.sql).joined(separator: ", ")) IN ACCESS SHARE MODE")
      } catch let e as BackupError {
        throw BackupError(
          .database, e.message,
          hint: "another session holds a conflicting lock; retry or raise the lock timeout")
      }
    }
    let map = try db.objectTableMap()
    let encoding = db.serverEncoding
    let dumpArgs: [String] = {
      var a = [
        "--snapshot=\(snapshot)", "--encoding=\(encoding)", "--no-password",
        "--lock-wait-timeout=\(lockMillis)",
      ]
      if plan.selective {
        for t in plan.tables { a.append("--table=\(PGDumpTool.exactPattern(t.schema, t.relname))") }
      }
      return a
    }()
    let child = PGDumpTool.ChildConnection(db)
    var objects: [SchemaObject] = []
    let out = OutputBuffer(sink: sink)

    // schema: pg_dump's pre-data section, with our object markers
    let pre = try pgDump.run(dumpArgs + ["--section=pre-data"], connection: child, endpoint: db.endpoint)
    try sink.beginPart(kind: .schema, table: nil)
    out.append(
      "-- ai-shell backup of PostgreSQL database \(sanitize(db.info.databaseName)) (server \(serverVersion)), made with pg_dump \(pgDump.major)\n"
    )
    out.append("-- restore with: psql -v ON_ERROR_STOP=1 -d newdb -f this-file (after decompressing)\n")
    out.append(contentsOf: annotate(pre, map: map, objects: &objects))
    try out.flush()
    try sink.endPart(rows: nil, contentChecksum: nil)

    // one part per table: exactly pg_dump's data format
    for t in plan.dataTables {
      let cols = try db.copyColumns(oid: t.oid)
      let colList = cols.isEmpty ? "" : " (\(cols))"
      try sink.beginPart(kind: .table, table: t.name)
      let marker = SchemaObject(type: "data", name: t.name, table: t.name)
      out.append(Bytes.markerPrefix + Bytes.markerJSON(marker) + "\n")
      out.append("COPY \(t.sql)\(colList) FROM stdin;\n")
      var checksum = RowSetChecksum()
      try db.copyOut("COPY \(t.sql)\(colList) TO STDOUT") { line in
        checksum.add(line)
        out.append(line)
        try out.flushIfNeeded()
      }
      out.append("\\.\n\n")
      try out.flush()
      try sink.endPart(rows: checksum.rows, contentChecksum: checksum.finalizeHex())
    }

    // post-data: sequence values read in the snapshot, then pg_dump's post-data section
    let wantedTables = Set(plan.tables.map(\.name))
    var seqText = ""
    for s in try db.sequences() {
      if plan.selective {
        guard let owner = s.table, wantedTables.contains(owner) else { continue }
      }
      guard
        let row = try db.query(
          "SELECT last_value::text, CASE WHEN is_called THEN 'true' ELSE 'false' END FROM \(s.sql)"
        ).first,
        let last = row[0], let called = row[1]
      else { continue }
      let o = SchemaObject(type: "sequence set", name: s.name, table: s.table)
      objects.append(o)
      let lit = "'" + s.sql.replacingOccurrences(of: "'", with: "''") + "'"
      seqText += Bytes.markerPrefix + Bytes.markerJSON(o) + "\n"
      seqText += "SELECT pg_catalog.setval(\(lit), \(last), \(called));\n"
    }
    let post = try pgDump.run(dumpArgs + ["--section=post-data"], connection: child, endpoint: db.endpoint)
    try sink.beginPart(kind: .postData, table: nil)
    if !seqText.isEmpty {
      // pg_dump's post-data starts with its own SET lines; ours need search_path-free names only
      out.append("\n--\n-- Sequence values, read in the backup's snapshot (added by ai-shell)\n--\n\n")
      out.append(seqText)
    }
    out.append(contentsOf: annotate(post, map: map, objects: &objects))
    try out.flush()
    try sink.endPart(rows: nil, contentChecksum: nil)
    _ = try? db.query("COMMIT")
    return DumpResult(serverVersion: serverVersion, sizeBytes: sizeBytes, objects: objects)
  }

  /// Copies pg_dump's output, adding an ai-shell marker after each `-- Name: …` TOC header
  /// (only at statement boundaries, never inside a function body or a string).
  func annotate(_ b: [UInt8], map: ObjectTableMap, objects: inout [SchemaObject]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(b.count + b.count / 8)
    guard let pieces = try? PGText.pieces(b) else { return b }
    for p in pieces {
      switch p {
      case .statement(let r):
        out.append(contentsOf: b[r])
      case .line(let r):
        out.append(contentsOf: b[r])
        guard
          b[r].starts(with: Array("-- Name: ".utf8)) || b[r].starts(with: Array("-- Data for Name: ".utf8)),
          let h = TOCHeader(String(decoding: b[r], as: UTF8.self))
        else { continue }
        let name = h.schema.map { "\($0).\(h.tag)" } ?? h.tag
        let o = SchemaObject(type: h.type.lowercased(), name: name, table: map.table(for: h))
        objects.append(o)
        out.append(contentsOf: Array((Bytes.markerPrefix + Bytes.markerJSON(o) + "\n").utf8))
      }
    }
    return out
  }

  func sanitize(_ s: String) -> String {
    s.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
  }

  /// Row counts and content checksums, computed as `dump` computes them.
  func tableStatsImpl(_ names: [String]) throws -> [String: TableStats] {
    let db = try connect()
    try db.setStableOutput()
    try db.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    let all = Dictionary(try db.userTables().map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    var result: [String: TableStats] = [:]
    for name in names {
      guard let t = all[name] else {
        throw BackupError(.notFound, "table \"\(name)\" does not exist in PostgreSQL database \(db.endpoint)")
      }
      var checksum = RowSetChecksum()
      if t.kind == "r" {
        let cols = try db.copyColumns(oid: t.oid)
        try db.copyOut("COPY \(t.sql)\(cols.isEmpty ? "" : " (\(cols))") TO STDOUT") { checksum.add($0) }
      }
      result[name] = TableStats(rows: checksum.rows, contentChecksum: checksum.finalizeHex())
    }
    _ = try? db.query("COMMIT")
    return result
  }
}

/// The pg_dump program: found, version-checked and run with the password in its environment.
struct PGDumpTool {
  var path: String
  var major: Int

  /// How a child connects like we did: every effective libpq option except the password, which
  /// goes through PGPASSWORD (never argv).
  struct ChildConnection {
    var conninfo: String
    var password: String?
    init(_ db: PGConnection) {
      var opts = db.effectiveOptions()
      opts["password"] = nil
      conninfo = opts.keys.sorted().compactMap { k in
        guard let v = opts[k], !v.isEmpty else { return nil }
        return "\(k)=\(ConnInfo.quote(v))"
      }.joined(separator: " ")
      password = db.usedPassword
    }
  }

  static func exactPattern(_ schema: String, _ name: String) -> String {
    func q(_ s: String) -> String { "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
    return q(schema) + "." + q(name)
  }

  static func version(of path: String) -> Int? {
    guard let r = try? runTool(path, ["--version"], environment: nil), r.status == 0 else { return nil }
    // "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    let text = String(decoding: r.stdout, as: UTF8.self)
    guard let close = text.range(of: ") ") else { return nil }
    let digits = text[close.upperBound...].prefix(while: { $0.isNumber })
    return Int(digits)
  }

  /// AI_SHELL_PG_DUMP, when set, is the only candidate; otherwise Debian's versioned directories
  /// (the server's major first) and then PATH.
  static func find(
    serverVersionNumber: Int, environment env: [String: String] = ProcessInfo.processInfo.environment
  ) throws -> PGDumpTool {
    let serverMajor = serverVersionNumber / 10000
    var candidates: [String] = []
    if let p = env["AI_SHELL_PG_DUMP"], !p.isEmpty {
      candidates.append(p)
    } else {
      // Debian keeps every major version side by side; /usr/bin/pg_dump is a wrapper
      for v in serverMajor...(serverMajor + 5) { candidates.append("/usr/lib/postgresql/\(v)/bin/pg_dump") }
      for dir in (env["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        candidates.append("\(dir)/pg_dump")
      }
    }
    var tooOld: [(String, Int)] = []
    for c in candidates where FileManager.default.isExecutableFile(atPath: c) {
      guard let major = version(of: c) else { continue }
      if major >= serverMajor { return PGDumpTool(path: c, major: major) }
      tooOld.append((c, major))
    }
    if let (path, major) = tooOld.first {
      throw BackupError(
        .database,
        "pg_dump \(major) (\(path)) is older than the PostgreSQL \(serverMajor) server and cannot dump it completely",
        hint:
          "install pg_dump \(serverMajor) or newer (Debian: postgresql-client-\(serverMajor)) or set AI_SHELL_PG_DUMP"
      )
    }
    throw BackupError(
      .database, "pg_dump was not found",
      hint:
        "install pg_dump \(serverMajor) or newer (Debian: postgresql-client-\(serverMajor)) or set AI_SHELL_PG_DUMP"
    )
  }

  func run(_ args: [String], connection: ChildConnection, endpoint: String) throws -> [UInt8] {
    var env = ProcessInfo.processInfo.environment
    if let pw = connection.password { env["PGPASSWORD"] = pw }
    let r = try PGDumpTool.runTool(path, args + ["--dbname=\(connection.conninfo)"], environment: env)
    guard r.status == 0 else {
      var message = oneLine(String(decoding: r.stderr, as: UTF8.self))
      if let pw = connection.password { message = message.replacingOccurrences(of: pw, with: "***") }
      throw BackupError(.database, "pg_dump failed for \(endpoint): \(message)")
    }
    return r.stdout
  }

  static func runTool(_ path: String, _ args: [String], environment: [String: String]?) throws
    -> (status: Int32, stdout: [UInt8], stderr: [UInt8])
  {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let environment { p.environment = environment }
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    do {
      try p.run()
    } catch {
      throw BackupError(.failure, "cannot run \(path): \(error.localizedDescription)")
    }
    let box = ErrBox()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async {
      box.data = err.fileHandleForReading.readDataToEndOfFile()
      group.leave()
    }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    p.waitUntilExit()
    return (p.terminationStatus, [UInt8](data), [UInt8](box.data))
  }

  final class ErrBox: @unchecked Sendable { var data = Data() }
}
