import BackupCore
import BackupModel
import Foundation
import TestSupport
import Testing

@testable import BackupEngines

/// How many locks a backup and a restore take, and what they do when another session stands
/// in the way (docs/ARCHITECTURE.md, "PostgreSQL locks are all taken before the data").
@Suite(.serialized) struct PostgresLockTests {
  /// The server's shared lock table: max_locks_per_transaction × (max_connections +
  /// max_prepared_transactions) locks, what `batchIfTooManyLocks` reads.
  func lockCapacity(_ server: PGServer) throws -> Int {
    Int(
      try server.psql(
        "postgres",
        "SELECT current_setting('max_locks_per_transaction')::int * (current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int)"
      ))!
  }

  /// A worker reaches a table while a DROP waits behind the main connection's lock: its lock
  /// request would queue behind the DROP (and the DROP behind the backup), so it asks without
  /// waiting, is refused, and the main connection, which holds the lock, copies the table. The
  /// worker's transaction and snapshot stay usable, and the DROP keeps waiting for the backup.
  @Test func aTableAWorkerCannotLockIsCopiedByTheMainConnection() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("handover")
    try source.psql(
      """
      CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a SELECT generate_series(1, 100);
      CREATE TABLE b (id int, t text); INSERT INTO b SELECT i, md5(i::text) FROM generate_series(1, 1000) i;
      """)
    let engine = source.engine
    let main = try engine.connect()
    try main.setStableOutput()
    try main.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    let snapshot = try #require(try main.query("SELECT pg_catalog.pg_export_snapshot()").first?.first ?? nil)
    let tables = try main.userTables()
    #expect(tables.map(\.name) == ["public.a", "public.b"])
    try engine.lockTables(main, tables)
    let dropper = try server.connection(source.name)
    try dropper.query("SET application_name = 'dropper'; SET lock_timeout = '60s'")
    let dropped = PGBackground { try dropper.query("DROP TABLE b") }
    let watcher = try server.connection(source.name)
    let deadline = Date().addingTimeInterval(30)
    var waiting = false
    while !waiting && Date() < deadline {
      try watcher.query("SELECT pg_catalog.pg_stat_clear_snapshot()")
      waiting =
        try watcher.query(
          """
          SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE a.application_name = 'dropper' AND NOT l.granted AND l.mode = 'AccessExclusiveLock'
          """
        ).first?.first == "1"
      if !waiting { Thread.sleep(forTimeInterval: 0.01) }
    }
    try #require(waiting, "the DROP must wait behind the main connection's lock")
    let worker = try engine.openWorker(snapshot: snapshot, lockMillis: 60_000)
    #expect(try engine.lockForWorker(worker, tables[0]))
    let started = Date()
    #expect(try !engine.lockForWorker(worker, tables[1]), "refused at once, not queued behind the DROP")
    #expect(Date().timeIntervalSince(started) < 10)
    #expect(try worker.query("SELECT count(*) FROM a").first?.first == "100")
    // a parallel dump with that worker: b comes from the main connection, whole and in place
    let shapes = try main.dumpColumns(of: tables, format: .sql)
    let run = engine.startParallelDump(
      tables, shapes, units: PGDumpUnit.plan(tables: 2, pages: [nil, nil]),
      layout: PGPartLayout(format: .sql, mtime: 0), workers: PGWorkers([worker]), main: main)
    let sink = MemorySink()
    try run.write(to: sink)
    #expect(sink.parts.map(\.table) == ["public.a", "public.b"])
    #expect(sink.parts.map(\.rows) == [100, 1000])
    #expect(
      sink.parts[1].text.contains(
        "\nCOPY public.b (id, t) FROM stdin;\n1\tc4ca4238a0b923820dcc509a6f75849b\n")
    )
    #expect(sink.parts[1].text.hasSuffix("\n\\.\n\n"))
    #expect(!dropped.isFinished, "the DROP waits for the backup")
    try worker.query("COMMIT")
    try main.query("COMMIT")
    _ = try dropped.result()
  }

  /// A database with more tables than the server's lock table holds in one transaction
  /// (max_locks_per_transaction × max_connections; each new table takes its own lock, its TOAST
  /// table's and index's and its primary key's): the backup takes about two locks per table in
  /// all (the main connection's, pg_dump's; the workers lock each table once between them), and
  /// the restore, which would fail as one transaction ("out of shared memory" after most of the
  /// work), commits in batches and says so.
  @Test func moreTablesThanOneTransactionCanLock() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let capacity = try lockCapacity(server)
    let n = capacity * 5 / 8
    try #require(n <= 10_000, "the test server's lock table (\(capacity)) is larger than this test expects")
    let source = try server.freshDatabase("manytables")
    var first = 1
    while first <= n {
      let last = min(n, first + 399)
      try source.psql(
        """
        DO $$ BEGIN FOR i IN \(first)..\(last) LOOP
          EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v text)', i);
          EXECUTE format('INSERT INTO t%s VALUES (%s, md5(%s::text))', i, i, i);
        END LOOP; END $$;
        """)
      first = last + 1
    }
    let dump = try pgDump(source.url, jobs: 2)
    #expect(dump.tables.count == n)
    #expect(dump.tableParts.allSatisfy { $0.rows == 1 })
    let target = server.unusedDatabase("manytables")
    defer { server.dropDatabase(target.name) }
    let report = try dump.restoreIntoNewDatabase(
      target.engine, exists: { try server.databaseExists(target.name) })
    #expect(report.notes.contains { $0.hasPrefix("restored in several transactions") }, "\(report.notes)")
    #expect(report.tables.count == n)
    let check = try target.engine.checkRestore(dump.request(dropExisting: true))
    #expect(check.contains { $0.hasPrefix("would restore in several transactions") }, "\(check.suffix(3))")
    // one table of them fits one transaction
    let one = try target.engine.checkRestore(dump.request(tables: ["public.t1"], dropExisting: true))
    #expect(!one.contains { $0.hasPrefix("would restore in several transactions") })
    #expect(
      try target.psql(
        "SELECT count(*) FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid WHERE c.contype = 'p' AND r.relname ~ '^t[0-9]+$'"
      ) == "\(n)")
    #expect(try target.psql("SELECT count(*) FROM t\(n) WHERE id = \(n) AND v = md5(id::text)") == "1")
    // again over the existing tables: --drop-existing drops them in batches too
    let again = try target.engine.restore(dump.request(dropExisting: true), parts: dump.opener)
    #expect(again.notes.contains { $0 == "dropped \(n - 20) more relations" }, "\(again.notes.suffix(5))")
    #expect(try target.psql("SELECT count(*) FROM t1") == "1")
  }

  /// A pg_dump with a pg_restore of its version beside it writes both schema sections in one run
  /// (one set of locks); without one, one pg_dump per section. Both give the same parts.
  @Test func oneSchemaDumpGivesTheSamePartsAsOnePerSection() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("sections")
    try source.psql(fidelitySQL)
    let real = try PGDumpTool.find(serverVersionNumber: 150000)
    try #require(real.restorePath != nil, "the test machine's pg_dump has pg_restore beside it")
    let dir = TempDir()
    let alone = dir.file("pg_dump")
    try FileManager.default.createSymbolicLink(atPath: alone, withDestinationPath: real.path)
    let lonely = try PGDumpTool.find(serverVersionNumber: 150000, environment: ["AI_SHELL_PG_DUMP": alone])
    #expect(lonely.restorePath == nil)
    var perSection = source.engine
    perSection.toolEnvironment["AI_SHELL_PG_DUMP"] = alone
    let created = Date(timeIntervalSince1970: 1_790_000_000)
    let one = try EngineDump(source.engine, jobs: 2, createdAt: created)
    let two = try EngineDump(perSection, jobs: 2, createdAt: created)
    // pg_dump 15.14 and later put a random key in \restrict and \unrestrict lines
    func stable(_ p: MemorySink.Part) -> String {
      p.text.split(separator: "\n", omittingEmptySubsequences: false)
        .filter { !$0.hasPrefix("\\restrict ") && !$0.hasPrefix("\\unrestrict ") }.joined(separator: "\n")
    }
    #expect(one.sink.parts.count == two.sink.parts.count)
    for (a, b) in zip(one.sink.parts, two.sink.parts) {
      #expect(a.kind == b.kind && a.table == b.table && a.rows == b.rows)
      #expect(stable(a) == stable(b), "\(a.kind) \(a.table ?? "")")
    }
    #expect(one.result.objects == two.result.objects)
    let target = server.unusedDatabase("sections")
    defer { server.dropDatabase(target.name) }
    _ = try two.restoreIntoNewDatabase(target.engine, exists: { try server.databaseExists(target.name) })
    #expect(try target.psql("SELECT count(*) FROM nums") == "8")
  }
}
