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

  /// Adds the rows of `other` (a checksum of other rows of the same table).
  mutating func merge(_ other: RowSetChecksum) {
    let (low, carry) = sum.low.addingReportingOverflow(other.sum.low)
    sum.low = low
    sum.high = sum.high &+ other.sum.high &+ (carry ? 1 : 0)
    rows += other.rows
  }

  func finalizeHex() -> String {
    var h = SHA256()
    h.update(data: Array(domain.utf8))
    var n = UInt64(bitPattern: rows).littleEndian
    withUnsafeBytes(of: &n) { h.update(bufferPointer: $0) }
    var s = (sum.low.littleEndian, sum.high.littleEndian)
    withUnsafeBytes(of: &s) { h.update(bufferPointer: $0) }
    return lowerHex(h.finalize())
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
  /// A connection to the engine's database: the one the probe (or the restore check) left
  /// idle, when it is still usable.
  func connect() throws -> PGConnection {
    if let c = probed.take() { return c }
    return try PGConnection(try ConnInfo(url))
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
    let creation = try db.databaseCreation()
    // pg_dump is found and version-checked (it runs `pg_dump --version`) while we read the catalog
    let serverVersionNumber = db.serverVersionNumber
    let environment = toolEnvironment
    let findPGDump = PGBackground {
      try PGDumpTool.find(serverVersionNumber: serverVersionNumber, environment: environment)
    }
    let plan = try plan(db, wanted: options.tables)
    try checkPrivileges(db, plan)
    // hold ACCESS SHARE on every dumped table for the whole dump: no DROP/ALTER can slip in
    // between pg_dump's catalog reads and our COPYs
    try lockTables(db, plan.tables)
    // every other session that locks the tables does so now, before the data: a DROP issued
    // while the rows are copied then waits for the backup (behind its locks) instead of making
    // a later lock of ours queue behind the DROP (docs/ARCHITECTURE.md, "PostgreSQL locks are all
    // taken before the data"). pg_dump's pre-data and post-data sections (two processes at once,
    // in the snapshot) run while this connection reads the columns and the workers connect.
    let pgDump = try findPGDump.result()
    let dumpArgs: [String] = {
      var a = [
        "--snapshot=\(snapshot)", "--encoding=\(db.serverEncoding)", "--no-password",
        "--lock-wait-timeout=\(lockMillis)",
      ]
      if plan.selective {
        for t in plan.tables { a.append("--table=\(PGDumpTool.exactPattern(t.schema, t.relname))") }
      }
      return a
    }()
    // each pg_dump names itself, so that this connection can see when it holds its locks
    let tag =
      "ai-shell pg_dump \(ProcessInfo.processInfo.processIdentifier) \(UInt32.random(in: 0...UInt32.max))"
    let endpoint = db.endpoint
    let names: [String]
    let dumps: [PGBackground<[UInt8]>]
    let sections: PGBackground<(pre: [UInt8], post: [UInt8])>
    if let restorePath = pgDump.restorePath {
      // one pg_dump (one set of locks, one read of the catalog) writes both sections as a
      // custom-format archive; pg_restore turns each section into the text pg_dump would write
      names = ["\(tag) schema"]
      let child = PGDumpTool.ChildConnection(db, applicationName: names[0])
      dumps = [
        PGBackground {
          try pgDump.run(
            dumpArgs + ["--format=custom", "--compress=0", "--section=pre-data", "--section=post-data"],
            connection: child,
            endpoint: endpoint)
        }
      ]
      let archive = dumps[0]
      sections = PGBackground {
        let bytes = try archive.result()
        let post = PGBackground { try PGDumpTool.section("post-data", of: bytes, restorePath: restorePath) }
        return (try PGDumpTool.section("pre-data", of: bytes, restorePath: restorePath), try post.result())
      }
    } else {
      names = ["\(tag) pre-data", "\(tag) post-data"]
      dumps = zip(["pre-data", "post-data"], names).map { section, name in
        let child = PGDumpTool.ChildConnection(db, applicationName: name)
        return PGBackground {
          try pgDump.run(dumpArgs + ["--section=\(section)"], connection: child, endpoint: endpoint)
        }
      }
      let (pre, post) = (dumps[0], dumps[1])
      sections = PGBackground { (try pre.result(), try post.result()) }
    }
    let layout = PGPartLayout(format: options.format, mtime: Int64(options.createdAt.timeIntervalSince1970))
    // each table's columns, read once (a split table's ranges share them)
    let shapes = try db.dumpColumns(of: plan.dataTables, format: options.format)
    let units =
      options.jobs > 1
      ? PGDumpUnit.plan(
        tables: plan.dataTables.count, pages: try splittablePages(db, plan.dataTables, shapes, layout))
      : []
    // the --jobs workers (big tables split into page ranges, so one big table is read in
    // parallel too) connect at once, while this connection reads the rest of the catalog
    let engine = self
    let opening = (0..<(units.count > 1 ? min(options.jobs, units.count) : 0)).map { _ in
      PGBackground { try engine.openWorker(snapshot: snapshot, lockMillis: lockMillis) }
    }
    let map = try db.objectTableMap()
    let workers = try opening.map { try $0.result() }
    // the workers copy rows once the pg_dump processes hold their locks (or have finished),
    // while pg_dump still reads the catalog: their units wait in memory for the schema part
    var parallel: PGParallelRun?
    if !workers.isEmpty {
      try waitForLocks(db, of: names, running: dumps, tables: plan.tables, timeoutMillis: lockMillis)
      parallel = startParallelDump(
        plan.dataTables, shapes, units: units, layout: layout, workers: PGWorkers(workers), main: db)
    }
    do {
      let (pre, post) = try sections.result()
      return try finishDump(
        db, plan: plan, pre: pre, post: post, parallel: parallel,
        map: map, pgDumpMajor: pgDump.major, layout: layout, shapes: shapes, sink: sink,
        result: DumpResult(
          serverVersion: serverVersion, sizeBytes: sizeBytes, objects: [], creation: creation))
    } catch {
      parallel?.stop(error)
      throw error
    }
  }

  /// The rest of a dump once pg_dump has run: the schema part, the table parts (from `parallel`
  /// or this connection), the sequence values and the post-data part.
  func finishDump(
    _ db: PGConnection, plan: PGDumpPlan, pre: [UInt8], post: [UInt8], parallel: PGParallelRun?,
    map: ObjectTableMap, pgDumpMajor: Int, layout: PGPartLayout, shapes: [PGDumpColumns], sink: PartSink,
    result: DumpResult
  ) throws -> DumpResult {
    var objects: [SchemaObject] = []
    let out = OutputBuffer(sink: sink)

    // schema: the pre-data section, with our object markers
    var schema = Array(
      "-- ai-shell backup of PostgreSQL database \(sanitize(db.info.databaseName)) (server \(result.serverVersion)), made with pg_dump \(pgDumpMajor)\n"
        .utf8)
    if layout.format == .sql {
      schema += Array(
        "-- restore with: psql -v ON_ERROR_STOP=1 -d newdb -f this-file (after decompressing)\n".utf8)
    }
    var annotator = PGAnnotator(PGCatalogResolver(map: map))
    schema += annotator.annotate(pre)
    objects += annotator.takeObjects()
    try sink.beginPart(kind: .schema, table: nil)
    out.append(contentsOf: try layout.scriptPart(.schema, schema))
    try out.flush()
    try sink.endPart(rows: nil, contentChecksum: nil)

    // one part per table, from this connection or from parallel workers on the same snapshot
    if let parallel {
      try parallel.write(to: sink)
    } else {
      for (i, t) in plan.dataTables.enumerated() {
        try sink.beginPart(kind: .table, table: t.name)
        let checksum = try dumpTable(db, t, shapes[i], layout: layout, out: out)
        try out.flush()
        try sink.endPart(rows: checksum.rows, contentChecksum: checksum.finalizeHex())
      }
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
    var postScript: [UInt8] = []
    if !seqText.isEmpty {
      // pg_dump's post-data starts with its own SET lines; ours need search_path-free names only
      postScript += Array(
        "\n--\n-- Sequence values, read in the backup's snapshot (added by ai-shell)\n--\n\n".utf8)
      postScript += Array(seqText.utf8)
    }
    postScript += annotator.annotate(post)
    objects += annotator.takeObjects()
    try sink.beginPart(kind: .postData, table: nil)
    out.append(contentsOf: try layout.scriptPart(.postData, postScript))
    try out.flush()
    try sink.endPart(rows: nil, contentChecksum: nil)
    _ = try? db.query("COMMIT")
    var result = result
    result.objects = objects
    return result
  }

  /// Refuses, before anything is written, tables and sequences the user may not read, naming
  /// them and the privilege needed.
  func checkPrivileges(_ db: PGConnection, _ plan: PGDumpPlan) throws {
    guard !plan.tables.isEmpty else { return }
    let oids = plan.tables.oidArrayLiteral
    let denied = try db.query(
      """
      SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.oid = ANY($1::oid[]) AND NOT pg_catalog.has_table_privilege(c.oid, 'SELECT')
      ORDER BY 1
      """, [oids]
    ).compactMap { $0[0] }
    guard let first = denied.first else { return }
    let user = (try? db.query("SELECT current_user").first?.first ?? nil) ?? db.info.userName
    let more =
      denied.count > 1
      ? " (and \(denied.count - 1) more: \(denied.dropFirst().prefix(5).joined(separator: ", ")))" : ""
    throw BackupError(
      .database,
      "PostgreSQL at \(db.endpoint): user \"\(user)\" lacks the SELECT privilege on table \"\(first)\"\(more)",
      hint: "GRANT SELECT ON the table to \(user) (or pg_read_all_data), or leave it out with --tables")
  }

  /// The heap size in pages of each table a parallel dump may split into page ranges (nil for a
  /// table it reads whole): only on PostgreSQL 14 and newer (TID range scans; older servers
  /// would scan the whole table for every range), only in the sql and json formats (a csv
  /// part's tar header needs the table's size before its rows), and only tables with columns.
  func splittablePages(
    _ db: PGConnection, _ tables: [PGTable], _ shapes: [PGDumpColumns], _ layout: PGPartLayout
  ) throws -> [Int64?] {
    guard db.serverVersionNumber >= 140000, layout.format != .csv, !tables.isEmpty else {
      return tables.map { _ in nil }
    }
    let oids = tables.oidArrayLiteral
    var pages: [String: Int64] = [:]
    for row in try db.query(
      """
      SELECT c.oid::text, pg_catalog.pg_relation_size(c.oid, 'main')
               / pg_catalog.current_setting('block_size')::bigint
      FROM pg_catalog.pg_class c
      WHERE c.oid = ANY($1::oid[])
      """, [oids])
    {
      if let oid = row[0], let n = row[1].flatMap({ Int64($0) }) { pages[oid] = n }
    }
    return zip(tables, shapes).map { t, shape in shape.copyList.isEmpty ? nil : pages[t.oid] }
  }

  /// Writes one table part's content (in the backup's format) from `db`'s snapshot; returns its
  /// row count and content checksum. With a `unit` that covers a range of the table's pages, it
  /// writes that range's rows, and the part's opening (first range) or closing (last range).
  func dumpTable(
    _ db: PGConnection, _ t: PGTable, _ shape: PGDumpColumns, layout: PGPartLayout, out: OutputBuffer,
    unit: PGDumpUnit? = nil
  ) throws -> RowSetChecksum {
    let cols = shape.copyList
    let colList = cols.isEmpty ? "" : " (\(cols))"
    let copy: String
    if let pages = unit?.pages {
      var range = "ctid >= '(\(pages.first),0)'::tid"
      if let end = pages.end { range += " AND ctid < '(\(end),0)'::tid" }
      copy = "COPY (SELECT \(cols) FROM ONLY \(t.sql) WHERE \(range)) TO STDOUT"
    } else {
      copy = "COPY \(t.sql)\(colList) TO STDOUT"
    }
    let opens = unit?.isFirst ?? true
    let closes = unit?.isLast ?? true
    var checksum = RowSetChecksum()
    switch layout.format {
    case .sql:
      if opens {
        let marker = SchemaObject(type: "data", name: t.name, table: t.name)
        out.append(Bytes.markerPrefix + Bytes.markerJSON(marker) + "\n")
        out.append("COPY \(t.sql)\(colList) FROM stdin;\n")
      }
      var batch = out.makeBatch()
      let limit = out.batchThreshold
      try db.copyOut(copy) { line in
        checksum.add(line)
        batch.append(contentsOf: line)
        if batch.count >= limit { try out.flush(batch: &batch) }
      }
      try out.flush(batch: &batch)
      if closes { out.append("\\.\n\n") }
    case .json:
      let columns = shape.columns
      let keys = PGRowFormat.jsonKeys(columns)
      var scratch: [UInt8] = []
      if opens { out.append(contentsOf: PGRowFormat.jsonHeader(table: t.name, columns: columns)) }
      var batch = out.makeBatch()
      let limit = out.batchThreshold
      try db.copyOut(copy) { line in
        checksum.add(line)
        PGRowFormat.appendJSON(line, columns: columns, keys: keys, to: &batch, scratch: &scratch)
        if batch.count >= limit { try out.flush(batch: &batch) }
      }
      try out.flush(batch: &batch)
    case .csv:
      // a tar entry needs its size first: pass 1 measures, pass 2 writes (same snapshot); csv
      // tables are never split (splittablePages)
      precondition(unit?.pages == nil, "a csv table part cannot be split")
      let header = PGRowFormat.csvHeader(shape.columns)
      var size = Int64(header.count)
      var record: [UInt8] = []
      var scratch: [UInt8] = []
      try db.copyOut(copy) { line in
        record.removeAll(keepingCapacity: true)
        PGRowFormat.appendCSV(line, to: &record, scratch: &scratch)
        size += Int64(record.count)
      }
      out.append(
        contentsOf: Tar.header(
          name: Tar.entryName(forTable: t.name, suffix: ".csv"), size: size, mtime: layout.mtime))
      out.append(contentsOf: header)
      var written = Int64(header.count)
      try db.copyOut(copy) { line in
        checksum.add(line)
        let before = out.bytes.count
        PGRowFormat.appendCSV(line, to: &out.bytes, scratch: &scratch)
        written += Int64(out.bytes.count - before)
        try out.flushIfNeeded()
      }
      guard written == size else {
        throw BackupError(.database, "table \"\(t.name)\" changed between the two csv passes")
      }
      out.append(contentsOf: [UInt8](repeating: 0, count: Tar.paddingCount(for: size)))
    }
    return checksum
  }

  /// `LOCK TABLE … IN ACCESS SHARE MODE` on the backup's tables, held to the end of the
  /// transaction; a table dropped since the snapshot, or a lock not granted within the lock
  /// timeout, is a clear error.
  func lockTables(_ db: PGConnection, _ tables: [PGTable]) throws {
    guard !tables.isEmpty else { return }
    let sql = "LOCK TABLE \(tables.map(\.sql).joined(separator: ", ")) IN ACCESS SHARE MODE"
    do {
      try Array(sql.utf8).withUnsafeBytes { _ = try db.execRaw($0) }
    } catch let e as PGStatementError {
      if e.sqlstate == "42P01" {
        throw BackupError(
          .database,
          "PostgreSQL at \(db.endpoint): \(e.message): the table was dropped by another session after the backup started",
          hint: "run the backup again")
      }
      if e.sqlstate == "53200" {
        throw Self.lockTableFull(db.endpoint, e.message, locking: "the \(tables.count) tables to back up")
      }
      throw BackupError(
        .database, "PostgreSQL at \(db.endpoint): cannot lock the tables to back up: \(e.message)",
        hint:
          "another session holds or waits for an exclusive lock on one of them (ALTER, DROP, TRUNCATE, VACUUM FULL); retry, or raise --lock-timeout"
      )
    }
  }

  /// The error for a server whose shared lock table is full ("out of shared memory", SQLSTATE
  /// 53200): it holds max_locks_per_transaction × max_connections locks in all, and a backup
  /// takes one per table in this connection and one in pg_dump's.
  static func lockTableFull(_ endpoint: String, _ message: String, locking what: String) -> BackupError {
    BackupError(
      .database, "PostgreSQL at \(endpoint): the server's lock table is full locking \(what) (\(message))",
      hint: lockTableFullHint)
  }

  /// What to do about a full lock table (our LOCK TABLE's error, or pg_dump's).
  static let lockTableFullHint =
    "raise max_locks_per_transaction on the server (a restart applies it; the backup needs about 2 locks per table, as pg_dump needs 1), or back up fewer tables at once with --tables"

  /// A worker connection for `--jobs`, in the backup's snapshot. It locks each table when it
  /// comes to it (`lockForWorker`), so the workers hold one lock per table between them, not one
  /// each: the main connection already holds every table's lock for the whole dump.
  func openWorker(snapshot: String, lockMillis: Int) throws -> PGConnection {
    let c = try PGConnection(try ConnInfo(url))
    try c.setStableOutput()
    try c.query("SET lock_timeout = \(lockMillis)")
    try c.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    try c.query("SET TRANSACTION SNAPSHOT '\(snapshot)'")
    return c
  }

  /// A worker's ACCESS SHARE lock on the table it is about to copy, requested without waiting:
  /// false when another session waits for an exclusive lock on it (a DROP or ALTER queued behind
  /// the main connection's lock), behind which the worker's request would queue until the
  /// backup ended; the main connection, which holds the lock already, copies that table instead.
  /// A savepoint keeps the worker's transaction, and its snapshot, usable after the refusal.
  func lockForWorker(_ db: PGConnection, _ t: PGTable) throws -> Bool {
    let lock =
      "SAVEPOINT ai_shell_lock; LOCK TABLE \(t.sql) IN ACCESS SHARE MODE NOWAIT; RELEASE SAVEPOINT ai_shell_lock"
    do {
      try Array(lock.utf8).withUnsafeBytes { _ = try db.execRaw($0) }
      return true
    } catch let e as PGStatementError {
      switch e.sqlstate {
      case "55P03":
        try db.query("ROLLBACK TO SAVEPOINT ai_shell_lock; RELEASE SAVEPOINT ai_shell_lock")
        return false
      case "53200":
        throw Self.lockTableFull(db.endpoint, e.message, locking: "table \(t.name)")
      default:
        throw BackupError(
          .database, "PostgreSQL at \(db.endpoint): cannot lock table \(t.name): \(e.message)")
      }
    }
  }

  /// Starts the worker connections on the table parts (all in the backup's snapshot, see
  /// `openWorker`); `PGParallelRun.write` hands them to the sink, units (tables, or page ranges
  /// of big tables) in order (PGParallelDump), each table's units in one part. Until then the
  /// workers run ahead within PGParallelDump's bounds, their units held in memory.
  func startParallelDump(
    _ tables: [PGTable], _ shapes: [PGDumpColumns], units: [PGDumpUnit], layout: PGPartLayout,
    workers: PGWorkers, main: PGConnection
  ) -> PGParallelRun {
    let jobs = workers.connections.count
    let shared = PGParallelDump(count: units.count, lookahead: jobs + 1)
    let engine = self
    // one unit's rows from `db` into `sink` (a worker's hand-over, or the writer's own sink)
    let copyUnit: @Sendable (PGConnection, PGDumpUnit, PartSink) throws -> RowSetChecksum = {
      db, unit, sink in
      let out = OutputBuffer(sink: sink)
      let checksum = try engine.dumpTable(
        db, tables[unit.table], shapes[unit.table], layout: layout, out: out, unit: unit)
      try out.flush()
      return checksum
    }
    // a thread of its own, not the global dispatch queue: pg_dump may still be running, and the
    // threads reading its output could hold that queue's few threads (one per core) until it ends
    let running = PGBackground {
      runThreads(jobs) { w in
        let db = workers.connections[w]
        var locked = Set<Int>()
        while let i = shared.claim() {
          do {
            let unit = units[i]
            if !locked.contains(unit.table) {
              guard try engine.lockForWorker(db, tables[unit.table]) else {
                shared.handToWriter(i)
                continue
              }
              locked.insert(unit.table)
            }
            shared.finish(i, try copyUnit(db, unit, PGPipeSink(shared, i)))
          } catch {
            shared.fail(error)
            return
          }
        }
      }
    }
    // a unit a worker could not lock is copied by the main connection, which holds every lock
    return PGParallelRun(
      shared: shared, units: units, tables: tables, running: running,
      copyOnMain: { unit, sink in try copyUnit(main, unit, sink) })
  }

  /// Waits until each of the pg_dump processes named `names` (their application_name) holds its
  /// ACCESS SHARE lock on every table in `tables`, or has ended: the first row is copied only
  /// after every lock of the backup is held (docs/ARCHITECTURE.md, "PostgreSQL locks are all
  /// taken before the data"), not after pg_dump has read the whole catalog.
  func waitForLocks(
    _ db: PGConnection, of names: [String], running: [PGBackground<[UInt8]>], tables: [PGTable],
    timeoutMillis: Int
  ) throws {
    guard !tables.isEmpty else { return }
    let oids = tables.oidArrayLiteral
    let deadline = Date().addingTimeInterval(Double(timeoutMillis) / 1000 + 30)
    while true {
      // pg_stat_activity is read once per transaction unless its snapshot is cleared
      try db.query("SELECT pg_catalog.pg_stat_clear_snapshot()")
      let rows = try db.query(
        """
        SELECT a.application_name, count(*) FROM pg_catalog.pg_locks l
        JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
        WHERE a.application_name = ANY($1::text[]) AND l.locktype = 'relation' AND l.granted
          AND l.mode = 'AccessShareLock' AND l.relation = ANY($2::oid[])
        GROUP BY 1
        """, ["{" + names.map { "\"\($0)\"" }.joined(separator: ",") + "}", oids])
      var held: [String: Int] = [:]
      for r in rows { if let n = r[0], let c = r[1].flatMap({ Int($0) }) { held[n] = c } }
      let ready = zip(names, running).allSatisfy { name, dump in
        dump.isFinished || (held[name] ?? 0) >= tables.count
      }
      if ready || Date() > deadline { return }
      usleep(2000)
    }
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
  /// pg_restore of the same major version beside pg_dump, if there is one: a dump then runs one
  /// pg_dump (custom format, schema only) and has pg_restore write its two sections as text,
  /// instead of one pg_dump per section (each locking every table and reading the catalog).
  var restorePath: String?

  /// How a child connects like we did: every effective libpq option except the password, which
  /// goes through PGPASSWORD (never argv).
  struct ChildConnection {
    var conninfo: String
    var password: String?
    init(_ db: PGConnection, applicationName: String? = nil) {
      var opts = db.effectiveOptions()
      opts["password"] = nil
      if let applicationName { opts["application_name"] = applicationName }
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
      if major >= serverMajor {
        let restore = URL(fileURLWithPath: c).deletingLastPathComponent().appendingPathComponent("pg_restore")
          .path
        let sameMajor = FileManager.default.isExecutableFile(atPath: restore) && version(of: restore) == major
        return PGDumpTool(path: c, major: major, restorePath: sameMajor ? restore : nil)
      }
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
      // pg_dump's own LOCK TABLE queued behind another session's exclusive lock request
      let lockHint =
        message.contains("out of shared memory")
        ? "the server's lock table is full: " + PostgresEngine.lockTableFullHint
        : message.contains("LOCK TABLE")
          ? "another session holds or waits for an exclusive lock on a table (ALTER, DROP, TRUNCATE); retry, or raise --lock-timeout"
          : nil
      throw BackupError(.database, "pg_dump failed for \(endpoint): \(message)", hint: lockHint)
    }
    return r.stdout
  }

  /// One section ("pre-data" or "post-data") of a custom-format schema archive, as the text
  /// pg_dump writes for it (pg_restore without a database writes a script).
  static func section(_ section: String, of archive: [UInt8], restorePath: String) throws -> [UInt8] {
    let r = try runTool(restorePath, ["--section=\(section)", "--file=-"], environment: nil, input: archive)
    guard r.status == 0 else {
      throw BackupError(
        .failure,
        "pg_restore (\(restorePath)) failed writing the \(section) section: \(oneLine(String(decoding: r.stderr, as: UTF8.self)))"
      )
    }
    return r.stdout
  }

  static func runTool(
    _ path: String, _ args: [String], environment: [String: String]?, input: [UInt8]? = nil
  ) throws -> (status: Int32, stdout: [UInt8], stderr: [UInt8]) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    if let environment { p.environment = environment }
    let out = Pipe()
    let err = Pipe()
    let inPipe = input.map { _ in Pipe() }
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inPipe ?? FileHandle.nullDevice
    do {
      try p.run()
    } catch {
      throw BackupError(.failure, "cannot run \(path): \(error.localizedDescription)")
    }
    // the input goes in from a thread of its own while this one reads the output; SIGPIPE is
    // blocked on that thread, so a program that exits without reading all of it is an EPIPE
    // error (its exit status tells the rest), not the end of this process
    let feeding = inPipe.map { pipe in
      PGBackground {
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
        let h = pipe.fileHandleForWriting
        try? h.write(contentsOf: input!)
        try? h.close()
      }
    }
    // a thread, not the global dispatch queue, whose few threads (one per core) it would block
    // for as long as pg_dump runs
    let errors = PGBackground { err.fileHandleForReading.readDataToEndOfFile() }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    let errorText = (try? errors.result()) ?? Data()
    _ = try? feeding?.result()
    p.waitUntilExit()
    return (p.terminationStatus, [UInt8](data), [UInt8](errorText))
  }
}
