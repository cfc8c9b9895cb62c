import BackupCore
import BackupModel
import CPGCopyBinary
import Foundation
import TestSupport
import Testing

@testable import BackupEngines

// These tests need a real PostgreSQL server: scripts/test.sh starts one with
// scripts/pg-test-server.sh and exports AI_SHELL_TEST_PG_URL (a superuser URL with a password).

/// The test server's URL, or nil (the test then prints why it is skipped and returns).
func serverURL(_ test: String = #function) -> String? { testServerURL("AI_SHELL_TEST_PG_URL", test: test) }

/// The test server, reached with psql (password through PGPASSWORD).
@dynamicMemberLookup struct PGServer {
  let address: ServerAddress
  init(_ url: String) { address = ServerAddress(url, defaultPort: 5432, defaultUser: "postgres") }
  subscript<T>(dynamicMember path: KeyPath<ServerAddress, T>) -> T { address[keyPath: path] }
  func url(db: String, password: String? = nil) -> String { address.url(db: db, password: password) }

  func connection(_ db: String) throws -> PGConnection {
    try PGConnection(try ConnInfo(url(db: db)))
  }

  /// Runs psql (script on stdin) against a database; throws on any error.
  @discardableResult
  func psql(_ db: String, _ sql: String, bytes: [UInt8]? = nil) throws -> String {
    let r = try runProcess(
      "psql",
      [
        "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.host, "-p", self.port, "-U", self.user,
        "-d", db,
      ],
      stdin: bytes.map { Data($0) } ?? Data(sql.utf8), environment: ["PGPASSWORD": self.password])
    guard r.status == 0 else {
      throw BackupError(.failure, "psql failed: \(String(decoding: r.stderr, as: UTF8.self))")
    }
    return String(decoding: r.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
  }
}

extension PGServer: ScratchHost {
  func engine(url: String) -> PostgresEngine { PostgresEngine(url: url) }
  func run(_ db: String, _ sql: String) throws -> String { try psql(db, sql) }
  func createDatabase(_ name: String) throws { try psql("postgres", "CREATE DATABASE \(name)") }
  func databaseExists(_ name: String) throws -> Bool {
    try psql("postgres", "SELECT count(*) FROM pg_database WHERE datname = '\(name)'") == "1"
  }
  func dropDatabase(_ name: String) {
    _ = try? psql("postgres", "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
  }
}

typealias ScratchDB = ScratchDatabase<PGServer>

/// The outcome of work on another thread: nil until set, then the error or none.
final class ResultBox: @unchecked Sendable {
  private let lock = NSLock()
  private var value: Error??
  func set(_ e: Error?) { lock.withLock { value = .some(e) } }
  var error: Error? { lock.withLock { value ?? nil } }
}

extension PGServer {
  /// `pg_dump` (plain format) of a database into a file, optionally through gzip.
  func pgDumpPlain(_ db: String, to file: String, gzip: Bool) throws {
    let r = try shell(
      "pg_dump -h \(self.host) -p \(self.port) -U \(self.user) -d \(db)\(gzip ? " | gzip" : "") > '\(file)'",
      environment: ["PGPASSWORD": self.password])
    guard r.status == 0 else { throw BackupError(.failure, "pg_dump failed: \(r.stderr)") }
  }
}

extension ScratchDatabase where Server == PGServer {
  /// psql in this database.
  @discardableResult func psql(_ script: String) throws -> String { try sql(script) }
}

func pgDump(_ url: String, tables: [String]? = nil, format: DumpFormat = .sql, jobs: Int = 1) throws
  -> EngineDump
{
  try EngineDump(
    PostgresEngine(url: url), tables: tables, format: format, jobs: jobs,
    createdAt: Date(timeIntervalSince1970: 1_790_000_000))
}

/// Every type and object kind the fidelity tests check.
let fidelitySQL = #"""
  CREATE EXTENSION hstore;
  CREATE SCHEMA "Sales Dept";
  CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
  CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
  CREATE TYPE pair AS (a int, b text);
  CREATE TABLE nums (id int PRIMARY KEY, i2 int2, i4 int4, i8 int8, n numeric(40,20), f8 float8, f4 float4,
    b bool);
  INSERT INTO nums VALUES
    (1, -32768, -2147483648, -9223372036854775808, -12345678901234567890.12345678901234567890, 'NaN', 'NaN', true),
    (2, 32767, 2147483647, 9223372036854775807, 99999999999999999999.99999999999999999999, 'Infinity', '-Infinity', false),
    (3, 0, 0, 0, 0.00000000000000000001, '-0', '-0', NULL),
    (4, NULL, NULL, NULL, NULL, 1e-308, 3.4e38, NULL),
    (5, 1, 2, 3, 4.5, 0.1, 0.1, true),
    (6, 1, 2, 3, 4.5, '-Infinity', 'Infinity', false),
    (7, 1, 2, 3, 4.5, 2.2250738585072014e-308, 1.17549435e-38, true),
    (8, 1, 2, 3, 4.5, 4.9e-324, 1.4e-45, true);
  CREATE TABLE texts (id serial PRIMARY KEY, t text, by bytea, u uuid, j json, jb jsonb, kv hstore);
  INSERT INTO texts (t, by, u, j, jb, kv) VALUES
    ('ünïcødé 😀 日本語', (SELECT decode(string_agg(lpad(to_hex(i), 2, '0'), ''), 'hex') FROM generate_series(0, 255) i),
     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2.50, null], "b": "x\"y"}', '{"z": 1, "a": {"b": [true]}}',
     'a=>1, "b c"=>NULL'),
    (E'back\\slash\ttab\nnewline\rcr \\N not null', '\x', NULL, 'null', 'null', ''),
    ('', NULL, NULL, NULL, NULL, NULL),
    (NULL, '\x00', NULL, '  {"spaces" :  1}  ', '[]', NULL),
    (E'\\.', '\x5c2e0a', NULL, NULL, NULL, NULL),
    ('semi;colon -- not a comment /* nor this */ $$ dollar $$ ''quote''', NULL, NULL, NULL, NULL, NULL);
  CREATE TABLE times (id int, d date, ts timestamp, tz timestamptz, iv interval, t time, tt timetz);
  INSERT INTO times VALUES
    (1, '2024-02-29', '2024-02-29 23:59:59.999999', '2024-02-29 23:59:59.999999+05:30', '1 year 2 mons 3 days 04:05:06.789',
     '23:59:59.999999', '12:00+03'),
    (2, 'infinity', '-infinity', 'infinity', '-178000000 years', '00:00', '00:00-12'),
    (3, '4713-01-01 BC', '0001-01-01 00:00:00 BC', '1970-01-01 00:00:00+00', '-1 days +02:00:00', '24:00', '24:00+14'),
    (4, NULL, NULL, NULL, NULL, NULL, NULL);
  CREATE TABLE arrs (id int, a int[], t text[], m int[][], e mood[]);
  INSERT INTO arrs VALUES
    (1, '{1,NULL,3}', '{"a b",NULL,"c\"d","NULL","",\\}', '{{1,2},{3,4}}', '{sad,happy}'),
    (2, '{}', '{}', '[0:1][2:3]={{1,2},{3,NULL}}', NULL),
    (3, NULL, '{"ü\\n"}', '{{{1}}}', '{}');
  CREATE TABLE "Sales Dept"."Order Items" (
    "Item ID" int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    qty posint NOT NULL,
    price numeric(10,2),
    total numeric GENERATED ALWAYS AS (qty * price) STORED,
    m mood DEFAULT 'ok',
    p pair,
    r int4range,
    tr tstzrange,
    "Mixed Case" text);
  INSERT INTO "Sales Dept"."Order Items" (qty, price, m, p, r, tr, "Mixed Case") VALUES
    (1, 9.99, 'sad', ROW(1, 'one'), '[1,10)', '[2024-01-01 00:00+00,2024-02-01 00:00+00)', 'A'),
    (3, 0.10, 'happy', ROW(NULL, 'with "quotes", commas'), 'empty', '(,)', NULL),
    (2, NULL, NULL, NULL, '(,5]', NULL, 'z');
  CREATE TABLE measurements (id int, at date NOT NULL, v float8) PARTITION BY RANGE (at);
  CREATE TABLE measurements_2023 PARTITION OF measurements FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
  CREATE TABLE measurements_2024 PARTITION OF measurements FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
  CREATE INDEX measurements_at ON measurements (at);
  INSERT INTO measurements SELECT i, date '2023-06-01' + i, i * 1.5 FROM generate_series(1, 400) i;
  CREATE TABLE parent_t (id int PRIMARY KEY);
  CREATE TABLE child_t (id int PRIMARY KEY, pid int REFERENCES parent_t (id));
  INSERT INTO parent_t SELECT generate_series(1, 50);
  INSERT INTO child_t SELECT i, (i % 50) + 1 FROM generate_series(1, 200) i;
  CREATE TABLE inh_parent (a int);
  CREATE TABLE inh_child (b int) INHERITS (inh_parent);
  INSERT INTO inh_parent VALUES (1);
  INSERT INTO inh_child VALUES (2, 3);
  CREATE TABLE empty_t (x int);
  CREATE TABLE big (id bigserial PRIMARY KEY, payload text);
  INSERT INTO big (payload) SELECT repeat(md5(i::text), 10) FROM generate_series(1, 20000) i;
  CREATE VIEW big_orders AS SELECT * FROM "Sales Dept"."Order Items" WHERE qty > 1;
  CREATE MATERIALIZED VIEW num_summary AS SELECT count(*) AS c FROM nums;
  CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $body$
  BEGIN
    NEW.t := coalesce(NEW.t, '') || ';';  -- a semicolon and a comment inside a body
    RETURN NEW;
  END
  $body$;
  CREATE TRIGGER texts_touch BEFORE INSERT ON texts FOR EACH ROW EXECUTE FUNCTION touch();
  COMMENT ON TABLE nums IS 'numbers; with a semicolon';
  COMMENT ON COLUMN "Sales Dept"."Order Items".qty IS 'how many';
  CREATE SEQUENCE standalone_seq START 100;
  SELECT nextval('standalone_seq'), nextval('standalone_seq');
  """#

/// Facts about a database that a faithful restore must reproduce.
func shape(_ db: ScratchDB) throws -> String {
  try db.psql(
    """
    SELECT string_agg(x, E'\\n' ORDER BY x) FROM (
      SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text AS x FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      UNION ALL SELECT 'con ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
        WHERE connamespace <> 'pg_catalog'::regnamespace
      UNION ALL SELECT 'trg ' || tgname FROM pg_trigger WHERE NOT tgisinternal
      UNION ALL SELECT 'cmt ' || description FROM pg_description d JOIN pg_class c ON c.oid = d.objoid
      UNION ALL SELECT 'seq ' || last_value || ' ' || is_called FROM standalone_seq
      UNION ALL SELECT 'ident ' || last_value || ' ' || is_called FROM "Sales Dept"."Order Items_Item ID_seq"
      UNION ALL SELECT 'matview ' || c FROM num_summary
      UNION ALL SELECT 'view ' || count(*) FROM big_orders
      UNION ALL SELECT 'total ' || coalesce(sum(total), 0) FROM "Sales Dept"."Order Items"
      UNION ALL SELECT 'ext ' || extname FROM pg_extension
    ) s
    """)
}

@Suite(.serialized) struct PostgresEngineTests {
  @Test func roundTripAndInterop() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("src")
    try source.psql(fidelitySQL)

    let probe = try source.engine.probe()
    #expect(probe.engine == .postgres)
    #expect(probe.serverVersion.hasPrefix("15"))
    #expect(probe.tables.contains("Sales Dept.Order Items"))
    #expect(probe.tables.contains("public.measurements"))
    #expect(!probe.tables.contains { $0.hasPrefix("pg_catalog.") || $0.hasPrefix("information_schema.") })

    let dumped = try pgDump(source.url)
    #expect(dumped.sink.parts.first?.kind == .schema)
    #expect(dumped.sink.parts.last?.kind == .postData)
    #expect(
      Set(dumped.tables).isSuperset(of: [
        "public.nums", "public.texts", "Sales Dept.Order Items",
        "public.measurements_2023", "public.measurements_2024", "public.inh_child", "public.empty_t",
      ]))
    #expect(!dumped.tables.contains("public.measurements"), "a partitioned parent has no rows of its own")
    #expect(dumped.tableParts.first { $0.table == "public.big" }?.rows == 20000)
    #expect(
      dumped.tableParts.first { $0.table == "public.inh_parent" }?.rows == 1, "COPY reads ONLY the table")
    let text = String(decoding: dumped.sink.allBytes, as: UTF8.self)
    #expect(
      text.contains("-- ai-shell: {\"type\":\"data\",\"name\":\"public.nums\",\"table\":\"public.nums\"}"))
    #expect(
      text.contains(
        "COPY \"Sales Dept\".\"Order Items\" (\"Item ID\", qty, price, m, p, r, tr, \"Mixed Case\") FROM stdin;"
      ))
    #expect(dumped.result.objects.contains { $0.type == "index" && $0.table == "public.measurements" })
    #expect(dumped.result.objects.contains { $0.type == "trigger" && $0.table == "public.texts" })
    #expect(dumped.result.objects.contains { $0.type == "fk constraint" && $0.table == "public.child_t" })
    expectStatsMatch(try source.engine.tableStats(dumped.tables), dumped)

    // restore through the engine into a database that does not exist yet
    let target = server.unusedDatabase("dst")
    let report = try dumped.restoreIntoNewDatabase(target.engine, exists: target.exists)
    #expect(report.tables.first { $0.name == "public.big" }?.rows == 20000)
    expectStatsMatch(try target.engine.tableStats(dumped.tables), dumped)
    #expect(try shape(target) == shape(source))
    #expect(try target.psql("SELECT f8::text FROM nums WHERE id = 3") == "-0")
    #expect(
      try target.psql("SELECT md5(by) FROM texts WHERE id = 1")
        == source.psql("SELECT md5(by) FROM texts WHERE id = 1"))
    // the trigger was created after the data (it did not fire on restored rows) and works
    #expect(try target.psql("SELECT t FROM texts WHERE id = 3") == "")
    #expect(try target.psql("INSERT INTO texts (t) VALUES ('x') RETURNING t") == "x;")

    // interop: the concatenated file restores with psql -v ON_ERROR_STOP=1
    let viaPsql = try server.freshDatabase("psql")
    try server.psql(viaPsql.name, "", bytes: dumped.sink.allBytes)
    expectStatsMatch(try viaPsql.engine.tableStats(dumped.tables), dumped)
    #expect(try shape(viaPsql) == shape(source))
  }

  /// The fidelity database through csv and json (sql: roundTripAndInterop), serial and with
  /// --jobs 4: equal row counts and content checksums, the same catalog shape, sequences at the
  /// source's values; and --jobs 1 and --jobs 4 write byte-identical files.
  @Test(arguments: [DumpFormat.json, .csv]) func fidelityInCSVAndJSON(format: DumpFormat) throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("src")
    try source.psql(fidelitySQL)
    let dumped = try pgDump(source.url, format: format)
    let parallel = try pgDump(source.url, format: format, jobs: 4)
    // (pg_dump's scripts differ run to run: their \restrict key is random)
    let same = parallel.tableParts == dumped.tableParts
    #expect(same, "--jobs 4 must write the same table parts as --jobs 1")
    #expect(dumped.tableParts.first { $0.table == "public.big" }?.rows == 20000)
    let sqlDump = try pgDump(source.url)
    for part in sqlDump.tableParts {
      let same = dumped.tableParts.first { $0.table == part.table }
      #expect(same?.contentChecksum == part.contentChecksum, "checksum of \(part.table!) in \(format)")
    }
    if format == .json {
      let nums = dumped.tableParts.first { $0.table == "public.nums" }!.text
      #expect(
        nums.hasPrefix("{\"$table\":\"public.nums\",\"columns\":[{\"name\":\"id\",\"type\":\"integer\"}"))
      #expect(nums.contains("\"i8\":-9223372036854775808"))
      #expect(nums.contains("\"f8\":\"NaN\""))
      #expect(nums.contains("\"b\":true"))
      let schema = dumped.sink.parts[0].text
      #expect(schema.hasPrefix("{\"$backup\":{\"engine\":\"postgres\",\"format\":\"json\""))
      #expect(
        schema.contains(
          "{\"$object\":{\"type\":\"table\",\"name\":\"public.nums\",\"table\":\"public.nums\"},\"sql\":\"CREATE TABLE public.nums"
        ))
    } else {
      // the concatenated file is a tar that tar -x unpacks
      let dir = TempDir()
      try Data(dumped.sink.allBytes).write(to: URL(fileURLWithPath: dir.file("b.tar")))
      let r = try shell("cd '\(dir.path)' && tar -xf b.tar && ls")
      #expect(r.status == 0)
      #expect(r.stdout.contains("schema.sql") && r.stdout.contains("post-data.sql"))
      #expect(r.stdout.contains("Sales Dept.Order Items.csv"))
      let csv = try String(contentsOfFile: dir.file("public.texts.csv"), encoding: .utf8)
      #expect(csv.hasPrefix("\"id\",\"t\",\"by\",\"u\",\"j\",\"jb\",\"kv\"\n"))
    }
    for jobs in [1, 4] {
      let target = server.unusedDatabase("dst")
      let report = try target.engine.restore(dumped.request(jobs: jobs), parts: dumped.opener)
      #expect(report.statementsFailed == 0)
      #expect(report.tables.first { $0.name == "public.big" }?.rows == 20000)
      expectStatsMatch(try target.engine.tableStats(dumped.tables), dumped)
      #expect(try shape(target) == shape(source), "\(format) --jobs \(jobs)")
      #expect(try target.psql("SELECT f8::text FROM nums WHERE id = 3") == "-0")
      #expect(try target.psql("SELECT count(*) FROM texts WHERE t = ''") == "1")
      #expect(try target.psql("SELECT count(*) FROM texts WHERE t IS NULL") == "1")
      #expect(try target.psql("SELECT last_value FROM texts_id_seq") == "6")
      #expect(try target.psql("INSERT INTO texts (t) VALUES ('x') RETURNING t") == "x;")
    }
  }

  /// --jobs with the sql format: identical parts, a correct parallel restore, and a failing
  /// parallel restore leaves none of the backup's tables behind. Table t7 is big enough to be
  /// split into page ranges read by several workers (PGDumpUnit), with holes left by deletes.
  @Test func parallelDumpAndRestore() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("src")
    var sql = ""
    for i in 1...6 {
      sql +=
        "CREATE TABLE t\(i) (id int PRIMARY KEY, v text); INSERT INTO t\(i) SELECT g, repeat(md5(g::text), \(i)) FROM generate_series(1, \(i * 3000)) g;\n"
    }
    sql += """
      CREATE TABLE t7 (id int PRIMARY KEY, gone int, v text);
      INSERT INTO t7 SELECT g, g, repeat(md5(g::text), 3) FROM generate_series(1, 120000) g;
      ALTER TABLE t7 DROP COLUMN gone; DELETE FROM t7 WHERE id % 7 = 0 OR id BETWEEN 30000 AND 45000;
      """
    try source.psql(sql)
    let pages = Int64(try source.psql("SELECT pg_relation_size('t7') / 8192"))!
    let units = PGDumpUnit.plan(tables: 2, pages: [nil, pages])
    #expect(units.count >= 4, "t7 (\(pages) pages) must be split")
    #expect(
      units.filter { $0.table == 1 }.map(\.pages?.first) == (0..<Int64(units.count - 1)).map { $0 * 512 })
    #expect(units.last!.pages?.end == nil && units.last!.isLast && !units[1].isLast && units[1].isFirst)
    let one = try pgDump(source.url, jobs: 1)
    let four = try pgDump(source.url, jobs: 4)
    let same = one.tableParts == four.tableParts
    #expect(same, "--jobs 4 must write the same table parts as --jobs 1")
    #expect(four.tableParts.first { $0.table == "public.t7" }?.rows == 90000)
    for format in [DumpFormat.json] {
      let oneJSON = try pgDump(source.url, tables: ["t7"], format: format, jobs: 1)
      let fourJSON = try pgDump(source.url, tables: ["t7"], format: format, jobs: 4)
      #expect(oneJSON.tableParts == fourJSON.tableParts, "\(format): split t7 must equal the serial dump")
    }
    let target = try server.freshDatabase("dst")
    let report = try target.engine.restore(four.request(jobs: 3), parts: four.opener)
    #expect(report.tables.map(\.name) == four.tables)
    #expect(report.notes.contains { $0.contains("3 connections") })
    expectStatsMatch(try target.engine.tableStats(four.tables), four)
    #expect(try target.psql("SELECT count(*) FROM pg_indexes WHERE tablename LIKE 't_'") == "7")
    // tables of 1 MiB or more split over the connections (PGSplitCopy): the same rows, each
    // table reported once with all of its rows
    let splitTarget = try server.freshDatabase("split")
    var splitRequest = one.request(jobs: 3)
    splitRequest.splitTableBytes = 1 << 20
    let splitReport = try splitTarget.engine.restore(splitRequest, parts: one.opener)
    #expect(splitReport.tables.map(\.name) == one.tables)
    #expect(splitReport.tables.first { $0.name == "public.t7" }?.rows == 90000)
    expectStatsMatch(try splitTarget.engine.tableStats(one.tables), one)
    #expect(try splitTarget.psql("SELECT count(*) FROM pg_indexes WHERE tablename LIKE 't_'") == "7")

    // a corrupt part fails a parallel restore: the tables are dropped again, the error says so
    let again = try server.freshDatabase("bad")
    try again.psql("CREATE TABLE keep_me (x int)")
    // ... also when the corrupt part is a table split over several connections
    for splitBytes in [Int64(64 << 20), 1 << 20] {
      let error =
        four.restoreError(into: again.engine, failingPart: 4, jobs: 2, splitTableBytes: splitBytes)
        as? BackupError
      #expect(error?.status == .corrupt, "a corrupt part must fail the restore")
      #expect(error?.message.contains("dropped again") == true)
      #expect(try again.psql("SELECT count(*) FROM pg_class WHERE relname ~ '^t[0-9]$'") == "0")
      #expect(try again.psql("SELECT count(*) FROM keep_me") == "0")
    }
  }

  /// Restore sessions sort index builds in memory: maintenance_work_mem is raised to 512 MB
  /// when lower, never lowered.
  @Test func restoreSessionRaisesMaintenanceWorkMem() throws {
    guard let url = serverURL() else { return }
    let db = try PGConnection(try ConnInfo(url))
    let session = PGRestoreSession(
      db: db,
      request: RestoreRequest(
        format: .sql, parts: [], objects: [], tables: nil, dropExisting: false, continueOnError: false))
    try db.query("SET maintenance_work_mem = '64MB'")
    try session.raiseMaintenanceWorkMem()
    #expect(try db.query("SHOW maintenance_work_mem").first?.first == "512MB")
    try db.query("SET maintenance_work_mem = '1GB'")
    try session.raiseMaintenanceWorkMem()
    #expect(try db.query("SHOW maintenance_work_mem").first?.first == "1GB")
  }

  @Test func restoreRefusesExistingTablesAndDropsOnlyTheBackups() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("src")
    try source.psql(
      "CREATE SCHEMA s; CREATE TYPE s.kind AS ENUM ('a'); CREATE TABLE s.t (id int PRIMARY KEY, k s.kind); INSERT INTO s.t VALUES (1, 'a'), (2, NULL); CREATE TABLE u (x int); INSERT INTO u VALUES (7)"
    )
    let dumped = try pgDump(source.url)
    let target = try server.freshDatabase("dst")
    try target.psql("CREATE TABLE keep_me (y int); INSERT INTO keep_me VALUES (1)")
    let refused = try dumped.restoreTwiceIsRefused(target.engine)
    #expect(refused?.message.contains("s.t") == true || refused?.message.contains("public.u") == true)
    try target.psql("INSERT INTO s.t VALUES (3, 'a')")
    let report = try target.engine.restore(dumped.request(dropExisting: true), parts: dumped.opener)
    #expect(report.notes.contains { $0.contains("dropped table \"s.t\"") })
    #expect(report.notes.contains { $0.contains("kept existing") })
    #expect(try target.psql("SELECT count(*) FROM s.t") == "2")
    #expect(try target.psql("SELECT count(*) FROM keep_me") == "1")
    expectStatsMatch(try target.engine.tableStats(dumped.tables), dumped)

    // --tables: only that table's rows and objects
    let partial = try server.freshDatabase("part")
    let r = try partial.engine.restore(dumped.request(tables: ["public.u"]), parts: dumped.opener)
    #expect(r.tables.map(\.name) == ["public.u"])
    #expect(try partial.psql("SELECT to_regclass('s.t') IS NULL") == "t")
    #expect(try partial.psql("SELECT x FROM u") == "7")
    #expect(throws: BackupError.self) {
      try partial.engine.checkRestore(dumped.request(tables: ["public.nope"]))
    }
  }

  @Test func corruptPartRollsEverythingBack() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("src")
    try source.psql(
      "CREATE TABLE a (id int); INSERT INTO a SELECT generate_series(1, 5000); CREATE TABLE b (id int PRIMARY KEY); INSERT INTO b VALUES (1)"
    )
    let dumped = try pgDump(source.url)
    for failPart in [1, dumped.sink.parts.count - 1] {
      let target = try server.freshDatabase("dst")
      let error = dumped.restoreError(into: target.engine, failingPart: failPart)
      #expect(
        (error as? BackupError)?.status == .corrupt, "a corrupt part must fail the restore: \(error as Any)")
      #expect(try target.psql("SELECT count(*) FROM pg_class WHERE relname IN ('a', 'b')") == "0")
      // a restore that created its database removes it again
      let fresh = server.unusedDatabase("new")
      #expect(dumped.restoreError(into: fresh.engine, failingPart: failPart) != nil)
      #expect(try !fresh.exists())
    }
  }

  /// A backup's probe and its dump share one connection (one authentication fewer).
  @Test func theDumpTakesOverTheProbesConnection() throws {
    guard let url = serverURL() else { return }
    let source = try PGServer(url).freshDatabase("probe")
    let engine = source.engine
    _ = try engine.probe()
    let kept = try #require(engine.probed.take())
    engine.probed.put(kept)
    #expect(try engine.connect() === kept)
    #expect(engine.probed.take() == nil)
    #expect(try engine.connect() !== kept)
    // one left inside a transaction is not taken over, nor one the server has closed
    _ = try kept.query("BEGIN")
    engine.probed.put(kept)
    #expect(try engine.connect() !== kept)
    _ = try engine.probe()
    let closed = try #require(engine.probed.take())
    let pid = try #require(try closed.query("SELECT pg_backend_pid()").first?.first ?? nil)
    _ = try engine.connect().query("SELECT pg_terminate_backend(\(pid), 10000)")
    engine.probed.put(closed)
    let fresh = try engine.connect()
    #expect(fresh !== closed)
    #expect(try fresh.query("SELECT 1").first?.first == "1")
  }

  /// A restore's check leaves its connection (to the target, or to the maintenance database
  /// when the target does not exist yet) to the restore that follows.
  @Test func theRestoreTakesOverItsChecksConnection() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("chk")
    try source.psql("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
    let dumped = try pgDump(source.url)
    let target = server.unusedDatabase("chk")
    let engine = target.engine
    let notes = try engine.checkRestore(dumped.request())
    #expect(notes.contains { $0.contains("would create database") })
    let admin = try #require(engine.maintenanceIdle.take())
    engine.maintenanceIdle.put(admin)
    _ = try engine.restore(dumped.request(), parts: dumped.opener)
    #expect(engine.maintenanceIdle.take() == nil, "the restore used the check's connection")
    #expect(try target.psql("SELECT count(*) FROM t") == "2")
    // the target exists now: the check's connection to it is the restore's
    _ = try engine.checkRestore(dumped.request(dropExisting: true))
    let kept = try #require(engine.probed.take())
    engine.probed.put(kept)
    _ = try engine.restore(dumped.request(dropExisting: true), parts: dumped.opener)
    #expect(engine.probed.take() == nil)
    #expect(try target.psql("SELECT count(*) FROM t") == "2")
  }

  /// A restore that creates its target gives it the source's encoding and locale (recorded in
  /// the manifest, as pg_restore -C would); where the server refuses them, its own defaults, and
  /// the notes say which.
  @Test func aCreatedTargetHasTheSourcesEncodingAndLocale() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = server.unusedDatabase("latin")
    try server.psql(
      "postgres",
      "CREATE DATABASE \(source.name) ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
    // psql without a terminal speaks the database's encoding unless told otherwise
    let utf8 = "SET client_encoding = 'UTF8'; "
    try source.psql(
      utf8 + "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'café ñ ü')")
    let dumped = try pgDump(source.url)
    let recorded = try #require(dumped.result.creation)
    #expect(recorded.encoding == "LATIN1" && recorded.lcCollate == "C" && recorded.lcCtype == "C")
    #expect(recorded.localeProvider == "libc" && recorded.providerLocale == nil)
    func settings(_ db: String) throws -> String {
      try server.psql(
        "postgres",
        "SELECT pg_encoding_to_char(encoding) || ' ' || datcollate || ' ' || datctype FROM pg_database WHERE datname = '\(db)'"
      )
    }

    let target = server.unusedDatabase("latin")
    let check = try target.engine.checkRestore(dumped.request())
    #expect(check.contains { $0.contains("would create database") && $0.contains("LATIN1, LC_COLLATE C") })
    let report = try target.engine.restore(dumped.request(jobs: 2), parts: dumped.opener)
    #expect(try settings(target.name) == "LATIN1 C C")
    #expect(report.notes.contains { $0.contains("with the source's encoding and locale (LATIN1") })
    #expect(try target.psql(utf8 + "SELECT v FROM t") == "café ñ ü")

    // a locale this server lacks: the server's defaults, and the note names what it refused
    var lacking = dumped.request()
    lacking.creation?.lcCollate = "xx_XX.UTF-8"
    let other = server.unusedDatabase("latin")
    let fallback = try other.engine.restore(lacking, parts: dumped.opener)
    let defaults = try settings("postgres")
    #expect(try settings(other.name) == defaults)
    #expect(
      fallback.notes.contains {
        $0.contains("with this server's default encoding and locale, not the source's")
          && $0.contains("xx_XX.UTF-8")
      })
    #expect(try other.psql(utf8 + "SELECT v FROM t") == "café ñ ü")
    // no recorded settings (a backup made before they were): the server's defaults, as before
    var older = dumped.request()
    older.creation = nil
    let third = server.unusedDatabase("latin")
    #expect(
      try third.engine.restore(older, parts: dumped.opener).notes.contains(
        "created database \"\(third.name)\""))
    #expect(try settings(third.name) == defaults)
    // an ICU source on a server without ICU databases (before 15) is created with its defaults
    let icu = Manifest.DatabaseCreation(
      encoding: "UTF8", lcCollate: "C", lcCtype: "C", localeProvider: "icu", providerLocale: "und")
    #expect(PostgresEngine.creationOptions(icu, serverVersion: 140000) == nil)
    #expect(
      PostgresEngine.creationOptions(icu, serverVersion: 150000)
        == " ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'und'")
    #expect(
      PostgresEngine.creationOptions(recorded, serverVersion: 140000)
        == " ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'")
  }

  @Test func connectionErrorsAreClearAndSecretFree() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let secret = "Wr0ng-S3cret-pw"
    let faults = expectConnectionFaults(
      wrongPassword: PostgresEngine(url: server.url(db: "postgres", password: secret)),
      missingDatabase: (PostgresEngine(url: server.url(db: "no_such_db_here")), "no_such_db_here"),
      noServer: PostgresEngine(url: "postgresql://\(server.user):\(secret)@127.0.0.1:1/postgres"),
      secrets: [secret, server.password])
    #expect(faults.wrongPassword?.description.contains("\(server.host):\(server.port)/postgres") == true)
    #expect(faults.wrongPassword?.description.contains("password authentication failed") == true)
    #expect(faults.noServer?.description.contains("127.0.0.1:1/postgres") == true)
    // bad --tables name
    #expect(throws: BackupError.self) { _ = try pgDump(url, tables: ["public.nope"]) }
  }

  @Test func olderPgDumpIsRefusedWithTheVersionNeeded() throws {
    let dir = TempDir()
    let fake = dir.file("pg_dump")
    try "#!/bin/sh\necho 'pg_dump (PostgreSQL) 14.11'\n".write(
      toFile: fake, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: fake)
    do {
      _ = try PGDumpTool.find(serverVersionNumber: 150018, environment: ["AI_SHELL_PG_DUMP": fake])
      Issue.record("an older pg_dump must be refused")
    } catch let e as BackupError {
      #expect(e.description.contains("pg_dump 14"))
      #expect(e.description.contains("postgresql-client-15"))
    }
    #expect(
      try PGDumpTool.find(serverVersionNumber: 140000, environment: ["AI_SHELL_PG_DUMP": fake]).major == 14)
  }

  @Test func locatorAndRedaction() throws {
    let l = try DatabaseLocator("postgresql://me:s3cr%40t@db.example:6543/app?sslmode=require")
    #expect(l.engineKind == .postgres)
    #expect(l.location == "postgresql://me@db.example:6543/app?sslmode=require")
    #expect(try DatabaseLocator("postgres://h/db").engineKind == .postgres)
    #expect(PostgresEngine.redact("host=h password='a b\\'c' dbname=x") == "host=h password=*** dbname=x")
    #expect(
      PostgresEngine.redact("postgresql://u@h/db?password=xyz&sslmode=disable")
        == "postgresql://u@h/db?password=***&sslmode=disable")
  }

  @Test func missingRolesStillRestore() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let role = "r_\(UUID().uuidString.prefix(6).lowercased())"
    let source = try server.freshDatabase("src")
    try source.psql(
      "CREATE ROLE \(role); CREATE TABLE owned (x int); ALTER TABLE owned OWNER TO \(role); GRANT SELECT ON owned TO \(role); INSERT INTO owned VALUES (1)"
    )
    let dumped = try pgDump(source.url)
    #expect(String(decoding: dumped.sink.allBytes, as: UTF8.self).contains("OWNER TO \(role)"))
    try source.psql("DROP TABLE owned; DROP ROLE \(role)")
    let target = try server.freshDatabase("dst")
    let report = try target.engine.restore(dumped.request(), parts: dumped.opener)
    #expect(report.notes.contains { $0.contains(role) && $0.contains("fell to") })
    #expect(
      try target.psql("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'owned'") == server.user
    )
    #expect(try target.psql("SELECT x FROM owned") == "1")
  }

  @Test func snapshotHidesConcurrentTransfers() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("src")
    try source.psql(
      """
      CREATE TABLE checking (id int PRIMARY KEY, bal bigint NOT NULL);
      CREATE TABLE savings (id int PRIMARY KEY, bal bigint NOT NULL);
      INSERT INTO checking SELECT i, 1000 FROM generate_series(1, 1000) i;
      CREATE TABLE filler (id int, pad text);
      INSERT INTO filler SELECT i, repeat('x', 200) FROM generate_series(1, 100000) i;
      INSERT INTO savings SELECT i, 1000 FROM generate_series(1, 1000) i;
      """)
    let total = "2000000"
    let writerURL = source.url
    let writer = ConcurrentTransfers(connect: { try PGConnection(try ConnInfo(writerURL)) }) { db, i in
      _ = try? db.query(
        "BEGIN; UPDATE checking SET bal = bal - 5 WHERE id = \(i % 1000 + 1); UPDATE savings SET bal = bal + 5 WHERE id = \((i * 7) % 1000 + 1); COMMIT"
      )
    }
    let dumped = try writer.during { try pgDump(source.url) }
    #expect(
      try source.psql("SELECT (SELECT sum(bal) FROM checking) + (SELECT sum(bal) FROM savings)") == total)
    let target = try server.freshDatabase("dst")
    _ = try target.engine.restore(dumped.request(), parts: dumped.opener)
    #expect(
      try target.psql("SELECT (SELECT sum(bal) FROM checking) + (SELECT sum(bal) FROM savings)") == total)
    expectStatsMatch(try target.engine.tableStats(dumped.tables), dumped)
  }

  @Test func verifyTestThroughTheService() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("src")
    try source.psql(
      "CREATE TABLE t (id serial PRIMARY KEY, v text); INSERT INTO t (v) SELECT md5(i::text) FROM generate_series(1, 1000) i"
    )
    let dir = TempDir()
    let service = BackupService(backupDirectory: dir.path)
    service.testRestoreServer = url
    let summary = try service.create(
      .init(
        database: source.url, name: nil, compression: .zstd, level: nil, format: .sql, tables: nil,
        verify: true,
        lockTimeoutSeconds: 5))
    let manifest = try String(contentsOfFile: dir.file("\(summary.id).manifest.json"), encoding: .utf8)
    #expect(!manifest.contains(server.password))
    #expect(manifest.contains("\"engine\" : \"postgres\"") || manifest.contains("\"engine\":\"postgres\""))
    // the source's encoding and locale, for a restore that creates its target
    let recorded = try #require(try service.manifest(for: summary.id).database.creation)
    #expect(
      try server.psql(
        "postgres",
        "SELECT pg_encoding_to_char(encoding) || ' ' || datcollate || ' ' || datctype FROM pg_database WHERE datname = '\(source.name)'"
      ) == "\(recorded.encoding) \(recorded.lcCollate) \(recorded.lcCtype)")
    let created = server.unusedDatabase("src")
    let restored = try service.restore(summary.id, options: .init(target: created.url))
    #expect(
      restored.notes.contains { $0.contains("with the source's encoding and locale (\(recorded.encoding)") })
    let report = try service.verify(summary.id, deep: true, test: true)
    #expect(report.ok, "\(report.checks)")
    #expect(
      try server.psql("postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'ai_shell_verify_%'")
        == "0")
    // the file restores with the standard tools
    let file = summary.file!
    let viaPsql = try server.freshDatabase("zst")
    let r = try shell(
      "zstd -dc '\(file)' | psql -X -q -v ON_ERROR_STOP=1 -h \(server.host) -p \(server.port) -U \(server.user) -d \(viaPsql.name)",
      environment: ["PGPASSWORD": server.password])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(try viaPsql.psql("SELECT count(*) FROM t") == "1000")
  }
}

/// Faults that need their own role or their own server.
@Suite(.serialized) struct PostgresFaultTests {
  /// A user without SELECT on one table: create stops before writing anything, naming the table
  /// and the privilege, and nothing is listed as complete.
  @Test func noPrivilegeOnOneTable() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("priv")
    let role = "r_\(UUID().uuidString.prefix(6).lowercased())"
    try source.psql(
      """
      CREATE ROLE \(role) LOGIN PASSWORD 'limited-pw';
      CREATE TABLE open_t (x int); INSERT INTO open_t VALUES (1);
      CREATE TABLE "Secret T" (x int); INSERT INTO "Secret T" VALUES (2);
      GRANT SELECT ON open_t TO \(role);
      """)
    defer {
      _ = try? server.psql(
        "postgres", "DROP DATABASE IF EXISTS \(source.name) WITH (FORCE); DROP ROLE IF EXISTS \(role)")
    }
    let limited = "postgresql://\(role):limited-pw@\(server.host):\(server.port)/\(source.name)"
    let dir = TempDir()
    let service = BackupService(backupDirectory: dir.path)
    do {
      _ = try service.create(
        .init(
          database: limited, name: nil, compression: .zstd, level: nil, format: .sql, tables: nil,
          verify: false,
          lockTimeoutSeconds: 5))
      Issue.record("a table without SELECT privilege must stop the backup")
    } catch let e as BackupError {
      #expect(e.status == .database)
      #expect(e.message.contains("SELECT privilege"))
      #expect(e.message.contains("public.Secret T"))
      #expect(!e.message.contains("limited-pw"))
      #expect(!e.description.contains("\n"))
    }
    #expect(try service.list().allSatisfy { $0.status != .complete })
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".manifest.json") }
        .isEmpty)
    // with the table left out, the same user can back up
    let ok = try service.create(
      .init(
        database: limited, name: nil, compression: .zstd, level: nil, format: .sql, tables: ["public.open_t"],
        verify: false, lockTimeoutSeconds: 5))
    #expect(ok.status == .complete)
  }

  /// The server stops in the middle of a backup (pg_ctl stop -m fast on a server of its own):
  /// a clear error, and no backup listed as complete.
  @Test func serverStoppedMidBackup() throws {
    guard let url = serverURL() else { return }
    let main = PGServer(url)
    let own = try OwnTestServer(
      script: "pg-test-server.sh", portVariable: "PG_PORT", mainPort: Int(main.port) ?? 55432,
      environment: ["AI_SHELL_TEST_PG_PASSWORD": main.password])
    let server = PGServer("postgresql://\(main.user):\(main.password)@127.0.0.1:\(own.port)/postgres")
    try server.psql(
      "postgres",
      "CREATE TABLE big (id int, pad text); INSERT INTO big SELECT g, repeat(md5(g::text), 8) FROM generate_series(1, 400000) g"
    )
    let dir = TempDir()
    let service = BackupService(backupDirectory: dir.path)
    let serverURL = server.address.url
    let path = dir.path
    let job = BackgroundJob {
      try BackupService(backupDirectory: path).create(
        .init(
          database: serverURL, name: nil, compression: .zstd, level: nil, format: .sql, tables: nil,
          verify: false, lockTimeoutSeconds: 5))
    }
    // stop the server once the backup file has data in it
    _ = waitForData(in: dir.path, atLeast: 64 * 1024, seconds: 60)
    try own.run("stop")
    guard let outcome = job.wait(seconds: 120) else {
      Issue.record("the backup did not end after the server stopped")
      return
    }
    guard case .failure(let failure) = outcome else {
      Issue.record("the backup must fail when the server stops")
      return
    }
    let error = try #require(failure as? BackupError)
    #expect(error.status == .database)
    #expect(error.message.contains("127.0.0.1:\(own.port)/postgres"))
    #expect(!error.description.contains(main.password))
    #expect(!error.description.contains("\n"))
    #expect(try service.list().allSatisfy { $0.status != .complete })
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".manifest.json") }
        .isEmpty)
  }
}

/// `backup import` of a real pg_dump plain-format file (gzip-compressed): a standard backup with
/// one part per table (row counts), that verify --test and restore accept.
@Suite(.serialized) struct PostgresImportTests {
  @Test func importPgDumpPlainFile() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("dump")
    try source.psql(fidelitySQL)
    let dir = TempDir()
    let file = dir.file("dump.sql.gz")
    try server.pgDumpPlain(source.name, to: file, gzip: true)
    let service = BackupService(backupDirectory: dir.file("backups"))
    service.testRestoreServer = url
    let outcome = try service.importBackup(.init(source: file, database: source.url))
    let m = try service.manifest(for: outcome.backup.id)
    #expect(outcome.sourceKind == "pg_dump")
    #expect(m.database.engine == .postgres)
    #expect(m.database.serverVersion.hasPrefix("15"))
    #expect(!m.database.location.contains(server.password))
    #expect(m.parts.first?.kind == .schema && m.parts.last?.kind == .postData)
    #expect(m.tableParts.first { $0.table == "public.big" }?.rows == 20000)
    #expect(m.tableParts.first { $0.table == "Sales Dept.Order Items" }?.rows == 3)
    #expect(m.tableParts.allSatisfy { $0.contentChecksum == nil })
    let report = try service.verify(outcome.backup.id, deep: true, test: true)
    #expect(report.ok, "\(report.checks)")
    let target = server.unusedDatabase("imp")
    _ = try service.restore(outcome.backup.id, options: .init(target: target.url))
    #expect(try shape(target) == shape(source))
    expectStatsMatch(try target.engine.tableStats(m.tableParts.compactMap(\.table)), try pgDump(source.url))
  }
}

/// A database whose object names trip naive parsing of pg_dump's TOC headers ("Name: a b pk ab"
/// is table "a b", constraint "pk ab"; an index named "idx ON weird"; a schema with a dot),
/// with foreign keys between its tables, indexes, triggers, comments, privileges, extended
/// statistics, serial and identity sequences, a standalone sequence, a view and a partitioned
/// table with a partitioned index.
let importSQL = #"""
  CREATE SCHEMA "Odd.Schema";
  CREATE TABLE "Odd.Schema"."My Table" ("Id" int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "Name" text UNIQUE, note text);
  CREATE INDEX "My Table_note" ON "Odd.Schema"."My Table" (note);
  CREATE TABLE public."a b" (x int, "c d" int, CONSTRAINT "a b c" CHECK (x > 0));
  ALTER TABLE public."a b" ADD CONSTRAINT "pk ab" PRIMARY KEY (x);
  CREATE INDEX "idx ON weird" ON public."a b" ("c d");
  CREATE TABLE public.a (id serial PRIMARY KEY, "b c" int REFERENCES public."a b" (x),
    mine int REFERENCES "Odd.Schema"."My Table" ("Id"), y int DEFAULT 7);
  CREATE UNIQUE INDEX "a.y" ON public.a (y);
  CREATE TABLE public.events (id bigserial PRIMARY KEY, a_id int REFERENCES public.a (id), payload text);
  CREATE INDEX events_payload ON public.events (payload);
  CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.payload := NEW.payload || '!'; RETURN NEW; END$$;
  CREATE FUNCTION keep() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
  CREATE TRIGGER "t r g" BEFORE INSERT ON public."a b" FOR EACH ROW EXECUTE FUNCTION keep();
  CREATE TRIGGER events_stamp BEFORE INSERT ON public.events FOR EACH ROW EXECUTE FUNCTION stamp();
  CREATE TRIGGER mine_keep BEFORE UPDATE ON "Odd.Schema"."My Table" FOR EACH ROW EXECUTE FUNCTION keep();
  COMMENT ON TABLE public."a b" IS 'table comment';
  COMMENT ON COLUMN public."a b"."c d" IS 'column comment';
  COMMENT ON INDEX public."idx ON weird" IS 'index comment';
  COMMENT ON CONSTRAINT "pk ab" ON public."a b" IS 'constraint comment';
  COMMENT ON TRIGGER "t r g" ON public."a b" IS 'trigger comment';
  COMMENT ON COLUMN public.events.payload IS 'events column comment';
  GRANT SELECT ON public."a b" TO PUBLIC;
  GRANT SELECT (payload) ON public.events TO PUBLIC;
  GRANT USAGE ON SEQUENCE public.a_id_seq TO PUBLIC;
  CREATE STATISTICS public."a b stats" ON x, "c d" FROM public."a b";
  CREATE SEQUENCE standalone START 10;
  SELECT nextval('standalone');
  CREATE VIEW a_view AS SELECT * FROM public.a;
  CREATE TABLE public.m (id int, at date NOT NULL) PARTITION BY RANGE (at);
  CREATE TABLE public.m_2024 PARTITION OF public.m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
  CREATE INDEX m_at ON public.m (at);
  INSERT INTO public.m SELECT i, date '2024-01-01' + i FROM generate_series(1, 100) i;
  INSERT INTO "Odd.Schema"."My Table" ("Name", note) SELECT 'n' || i, 'note ' || i FROM generate_series(1, 30) i;
  INSERT INTO public."a b" SELECT i, i * 2 FROM generate_series(1, 40) i;
  INSERT INTO public.a ("b c", mine, y) SELECT i, i, i FROM generate_series(1, 25) i;
  INSERT INTO public.events (a_id, payload) SELECT (i % 25) + 1, 'e' || i FROM generate_series(1, 500) i;
  """#

/// The user-visible objects of a database, with the table each belongs to, and its data.
func importShape(_ db: ScratchDB) throws -> String {
  try db.psql(
    """
    SELECT string_agg(x, E'\\n' ORDER BY x) FROM (
      SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text
             || coalesce(' on ' || (SELECT i.indrelid::regclass::text FROM pg_index i WHERE i.indexrelid = c.oid), '')
             || coalesce(' acl ' || c.relacl::text, '') AS x
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      UNION ALL SELECT 'con ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
        FROM pg_constraint WHERE connamespace <> 'pg_catalog'::regnamespace
      UNION ALL SELECT 'trg ' || tgrelid::regclass::text || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
      UNION ALL SELECT 'cmt ' || description FROM pg_description d
        WHERE d.classoid IN ('pg_class'::regclass, 'pg_constraint'::regclass, 'pg_trigger'::regclass)
      UNION ALL SELECT 'stat ' || stxname FROM pg_statistic_ext
      UNION ALL SELECT 'seq ' || s.relname || ' ' || (pg_sequence_last_value(s.oid))::text
        FROM pg_class s WHERE s.relkind = 'S'
      UNION ALL SELECT 'def ' || adrelid::regclass::text || ' ' || pg_get_expr(adbin, adrelid) FROM pg_attrdef
      UNION ALL SELECT 'rows ' || c.oid::regclass::text || ' '
          || (xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM ' || c.oid::regclass::text, false, true, '')))[1]::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
    ) s
    """)
}

/// `backup import` of a pg_dump plain script gets the object markers our own backups carry:
/// `restore --tables` of it restores exactly those tables with their own indexes, constraints,
/// triggers, comments, privileges and sequences (the same as `restore --tables` of a backup made
/// by `create`), a full restore reproduces the source, and verify --test passes.
@Suite(.serialized) struct PostgresImportMarkerTests {
  @Test(arguments: ["plain", "gzip"]) func importedDumpRestoresSingleTables(compression: String) throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("imk")
    try source.psql(importSQL)
    let dir = TempDir()
    let file = dir.file(compression == "gzip" ? "dump.sql.gz" : "dump.sql")
    try server.pgDumpPlain(source.name, to: file, gzip: compression == "gzip")
    let service = BackupService(backupDirectory: dir.file("backups"))
    service.testRestoreServer = url
    let imported = try service.importBackup(.init(source: file, database: source.url)).backup.id
    let m = try service.manifest(for: imported)
    func table(_ type: String, _ name: String) -> String?? {
      m.objects.first { $0.type == type && $0.name == name }.map(\.table)
    }
    #expect(table("table", "public.a b") == "public.a b")
    #expect(table("table", "Odd.Schema.My Table") == "Odd.Schema.My Table")
    #expect(table("index", "public.idx ON weird") == "public.a b")
    #expect(table("index", "public.a.y") == "public.a")
    #expect(table("index", "public.m_at") == "public.m")
    #expect(table("constraint", "public.a b pk ab") == "public.a b")
    #expect(table("fk constraint", "public.a a_b c_fkey") == "public.a")
    #expect(table("fk constraint", "public.events events_a_id_fkey") == "public.events")
    #expect(table("trigger", "public.a b t r g") == "public.a b")
    #expect(table("trigger", "Odd.Schema.My Table mine_keep") == "Odd.Schema.My Table")
    #expect(table("default", "public.a id") == "public.a")
    #expect(table("sequence", "public.a_id_seq") == "public.a")
    #expect(table("sequence owned by", "public.a_id_seq") == "public.a")
    #expect(table("sequence", "Odd.Schema.My Table_Id_seq") == "Odd.Schema.My Table")
    #expect(table("sequence set", "public.events_id_seq") == "public.events")
    #expect(table("sequence", "public.standalone") == .some(nil))
    #expect(table("comment", "public.INDEX \"idx ON weird\"") == "public.a b")
    #expect(table("comment", "public.CONSTRAINT \"pk ab\" ON \"a b\"") == "public.a b")
    #expect(table("comment", "public.COLUMN \"a b\".\"c d\"") == "public.a b")
    #expect(table("acl", "public.TABLE \"a b\"") == "public.a b")
    #expect(table("acl", "public.SEQUENCE a_id_seq") == "public.a")
    #expect(table("statistics", "public.a b stats") == "public.a b")
    #expect(table("function", "public.stamp()") == .some(nil))
    #expect(table("view", "public.a_view") == .some(nil))
    let report = try service.verify(imported, deep: true, test: true)
    #expect(report.ok, "\(report.checks)")

    // a backup of the same database made by create: the reference for every --tables restore
    let created = try service.create(
      .init(
        database: source.url, name: nil, compression: .zstd, level: nil, format: .sql, tables: nil,
        verify: false, lockTimeoutSeconds: 5)
    ).id
    for tables in [
      ["public.a b"], ["Odd.Schema.My Table"], ["public.a b", "Odd.Schema.My Table", "public.a"],
    ] {
      let fromImport = server.unusedDatabase("imt")
      let outcome = try service.restore(imported, options: .init(target: fromImport.url, tables: tables))
      #expect(outcome.statementsFailed == 0)
      let fromCreate = server.unusedDatabase("crt")
      _ = try service.restore(created, options: .init(target: fromCreate.url, tables: tables))
      let shape = try importShape(fromImport)
      #expect(shape == (try importShape(fromCreate)), "--tables \(tables)")
      // exactly those tables: no other table, and nothing that hangs on another table
      let restoredTables = Set(
        try fromImport.psql(
          "SELECT string_agg(c.oid::regclass::text, ',') FROM pg_class c WHERE c.relkind IN ('r', 'p') AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)"
        ).split(separator: ",").map(String.init))
      let regclass = [
        "public.a b": "\"a b\"", "Odd.Schema.My Table": "\"Odd.Schema\".\"My Table\"", "public.a": "a",
      ]
      let expected = Set(tables.compactMap { regclass[$0] })
      #expect(restoredTables == expected, "--tables \(tables)")
      if tables == ["public.a b"] {
        for line in [
          "rel public.idx ON weird i on \"a b\"", "rel public.pk ab i on \"a b\"", "trg \"a b\" t r g",
          "cmt index comment", "cmt constraint comment", "cmt trigger comment", "cmt column comment",
          "stat a b stats", "rows \"a b\" 40",
        ] {
          #expect(shape.contains(line), "\(line) in\n\(shape)")
        }
        for absent in ["events", "public.a.y", "mine_keep", "a_id_seq", "fkey", "My Table", "m_at"] {
          #expect(!shape.contains(absent), "\(absent) in\n\(shape)")
        }
      }
      if tables.count == 3 {
        #expect(shape.contains("con a a_b c_fkey FOREIGN KEY (\"b c\") REFERENCES \"a b\"(x)"))
        #expect(shape.contains("seq a_id_seq 25"))
        #expect(!shape.contains("events"))
      }
    }

    // the whole backup restores as the source
    let whole = server.unusedDatabase("imw")
    _ = try service.restore(imported, options: .init(target: whole.url))
    #expect(try importShape(whole) == importShape(source))
  }

  /// The same through the binary: pg_dump | gzip, `backup import`, `backup restore --tables`.
  @Test func importAndRestoreOneTableThroughTheBinary() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("imb")
    try source.psql(importSQL)
    let shell = AIShellRunner()
    let file = shell.work.file("dump.sql.gz")
    try server.pgDumpPlain(source.name, to: file, gzip: true)
    let imported = try shell.run(["backup", "import", file, "--database", source.url, "--json"])
    #expect(imported.status == 0, "\(imported.stderr)")
    let id = try #require(((imported.json as? [String: Any])?["backup"] as? [String: Any])?["id"] as? String)
    let target = server.unusedDatabase("imb")
    let restored = try shell.run([
      "backup", "restore", id, "--database", target.url, "--tables", "public.a b",
    ])
    #expect(restored.status == 0, "\(restored.stderr)")
    #expect(
      try target.psql(
        "SELECT string_agg(c.oid::regclass::text || ':' || c.relkind::text, ' ' ORDER BY c.relname) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'i', 'S')"
      ) == "\"a b\":r \"idx ON weird\":i \"pk ab\":i standalone:S")
    #expect(try target.psql("SELECT count(*) FROM \"a b\"") == "40")
    #expect(try target.psql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal") == "t r g")
  }
}

/// A value set by one thread and read by another.
final class Box<T>: @unchecked Sendable {
  private let lock = NSLock()
  private var stored: T
  init(_ value: T) { stored = value }
  var value: T {
    get { lock.withLock { stored } }
    set { lock.withLock { stored = newValue } }
  }
}

/// A table dropped, and rows written, by concurrent sessions while a backup runs (issue #4,
/// "Faults"): the backup's ACCESS SHARE locks make the DROP wait until the backup has finished,
/// so the backup holds the whole table (and restores it), and the writes it did not see are
/// absent as a whole; a DROP that commits between the backup's snapshot and its locks makes the
/// backup fail clearly, with nothing listed.
@Suite(.serialized) struct PostgresConcurrentDropTests {
  @Test(arguments: [1, 2]) func droppedDuringTheBackupWaitsForIt(jobs: Int) throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("drop")
    try source.psql(
      """
      CREATE TABLE victim (id int PRIMARY KEY, pad text);
      INSERT INTO victim SELECT i, md5(i::text) FROM generate_series(1, 400000) i;
      CREATE INDEX victim_pad ON victim (pad);
      CREATE TABLE ledger_a (n int PRIMARY KEY);
      CREATE TABLE ledger_b (n int PRIMARY KEY);
      """)
    let victimSum = try source.psql("SELECT sum(id) FROM victim")
    let dir = TempDir()
    let path = dir.path
    let sourceURL = source.url
    let backup = Box<Result<String, Error>?>(nil)
    let backupEnded = Box<Date?>(nil)
    let backupDone = DispatchSemaphore(value: 0)
    // a writer that keeps count(ledger_a) = count(ledger_b) in every transaction
    let writer = ConcurrentTransfers(connect: { try PGConnection(try ConnInfo(sourceURL)) }) { db, i in
      _ = try? db.query(
        "BEGIN; INSERT INTO ledger_a VALUES (\(i)); INSERT INTO ledger_b VALUES (\(i)); COMMIT")
    }
    writer.waitFor(20)
    Thread.detachNewThread {
      defer { backupDone.signal() }
      var options = BackupService.CreateOptions(database: sourceURL, lockTimeoutSeconds: 30)
      options.jobs = jobs
      do {
        backup.value = .success(try BackupService(backupDirectory: path).create(options).id)
      } catch {
        backup.value = .failure(error)
      }
      backupEnded.value = Date()
    }
    // wait until the backup is copying the table's rows, then DROP it from another session
    let watcher = try source.server.connection(source.name)
    var copying = false
    let deadline = Date().addingTimeInterval(120)
    while !copying && Date() < deadline && backupEnded.value == nil {
      copying =
        try watcher.query(
          "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE 'COPY %public.victim %TO STDOUT'"
        ).first?.first != "0"  // (with --jobs 2 the table is read in page ranges by both workers)
      if !copying { Thread.sleep(forTimeInterval: 0.005) }
    }
    try #require(copying, "the backup must still be copying the table when the DROP is issued")
    let dropEnded = Box<Date?>(nil)
    let dropError = Box<String?>(nil)
    let dropDone = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
      defer { dropDone.signal() }
      do {
        let db = try PGConnection(try ConnInfo(sourceURL))
        _ = try db.query("SET application_name = 'dropper'; SET lock_timeout = '120s'")
        _ = try db.query("DROP TABLE victim")
        dropEnded.value = Date()
      } catch {
        dropError.value = "\(error)"
      }
    }
    // the DROP waits for a lock held by the backup, while the backup is still running
    var waiting = false
    while !waiting && Date() < deadline && backupEnded.value == nil {
      waiting =
        try watcher.query(
          """
          SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE a.application_name = 'dropper' AND l.mode = 'AccessExclusiveLock' AND NOT l.granted
            AND l.relation = 'victim'::regclass AND cardinality(pg_blocking_pids(a.pid)) > 0
          """
        ).first?.first == "1"
      if !waiting { Thread.sleep(forTimeInterval: 0.005) }
    }
    #expect(waiting, "the DROP must wait for the backup's lock")
    #expect(dropEnded.value == nil, "the DROP must not end while the backup runs")
    backupDone.wait()
    writer.stop()
    #expect(dropDone.wait(timeout: .now() + 60) == .success)
    #expect(dropError.value == nil, "\(dropError.value ?? "")")
    // it was still waiting while the backup ran (above), and ended with the backup's transaction
    let ended = try #require(backupEnded.value)
    let dropped = try #require(dropEnded.value)
    #expect(abs(dropped.timeIntervalSince(ended)) < 10)
    let id = try backup.value!.get()
    let service = BackupService(backupDirectory: path)
    let m = try service.manifest(for: id)
    #expect(m.tableParts.first { $0.table == "public.victim" }?.rows == 400000)
    #expect(try source.psql("SELECT count(*) FROM pg_class WHERE relname = 'victim'") == "0")
    let target = server.unusedDatabase("drop")
    _ = try service.restore(id, options: .init(target: target.url))
    #expect(try target.psql("SELECT count(*) || ' ' || sum(id) FROM victim") == "400000 \(victimSum)")
    #expect(
      try target.psql(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'victim'::regclass ORDER BY 1")
        == "victim_pad\nvictim_pkey")
    let ledgers = try target.psql(
      "SELECT (SELECT count(*) FROM ledger_a) || ' ' || (SELECT count(*) FROM ledger_b)")
    let counts = ledgers.split(separator: " ")
    #expect(counts.count == 2 && counts[0] == counts[1], "\(ledgers)")
    #expect(
      Int(counts.first ?? "") ?? 0 < writer.count, "rows written after the snapshot are not in the backup")
  }

  /// A parallel dump's workers start copying once both pg_dump processes hold their table locks
  /// (`waitForLocks`, which finds them by application_name in pg_locks), not after pg_dump has
  /// ended; a pg_dump that ends without them (or before we look) does not hold the rows back.
  @Test func theDataWaitsForPGDumpsLocksOnly() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("locks")
    try source.psql("CREATE TABLE t1 (id int); CREATE TABLE t2 (id int); CREATE TABLE t3 (id int)")
    let engine = source.engine
    let db = try engine.connect()
    try db.query("BEGIN ISOLATION LEVEL REPEATABLE READ")
    let tables = try db.userTables().filter { $0.relname != "t3" }
    #expect(tables.count == 2)
    let release = DispatchSemaphore(value: 0)
    defer { release.signal() }
    let endless = PGBackground<[UInt8]> {
      release.wait()
      return []
    }
    // a session named like one of our pg_dumps, holding both locks: no wait for it to end
    let locker = try server.connection(source.name)
    try locker.query(
      "SET application_name = 'ai-shell pg_dump test pre-data'; BEGIN; LOCK TABLE t1, t2 IN ACCESS SHARE MODE"
    )
    var started = Date()
    try engine.waitForLocks(
      db, of: ["ai-shell pg_dump test pre-data"], running: [endless], tables: tables, timeoutMillis: 60_000)
    #expect(Date().timeIntervalSince(started) < 10)
    // one holding only one of them: waited for until it ends
    let partial = try server.connection(source.name)
    try partial.query(
      "SET application_name = 'ai-shell pg_dump test post-data'; BEGIN; LOCK TABLE t1 IN ACCESS SHARE MODE")
    let ends = PGBackground<[UInt8]> {
      Thread.sleep(forTimeInterval: 0.5)
      return []
    }
    started = Date()
    try engine.waitForLocks(
      db, of: ["ai-shell pg_dump test pre-data", "ai-shell pg_dump test post-data"],
      running: [endless, ends],
      tables: tables, timeoutMillis: 60_000)
    #expect(Date().timeIntervalSince(started) >= 0.5)
    #expect(ends.isFinished && !endless.isFinished)
  }

  /// The DROP commits after the backup took its snapshot but before it locked the table: the
  /// backup fails with a clear message, and nothing is listed.
  @Test func droppedBeforeTheBackupLocksFailsClearly() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("drop")
    try source.psql("CREATE TABLE victim (id int); INSERT INTO victim SELECT generate_series(1, 1000)")
    // a session that has dropped the table but not committed yet: the backup's snapshot still
    // sees the table, and its LOCK waits for this session
    let dropper = try source.server.connection(source.name)
    _ = try dropper.query("SET application_name = 'dropper'; BEGIN; DROP TABLE victim")
    let dir = TempDir()
    let path = dir.path
    let sourceURL = source.url
    let outcome = ResultBox()
    let done = DispatchSemaphore(value: 0)
    Thread.detachNewThread {
      defer { done.signal() }
      do {
        _ = try BackupService(backupDirectory: path).create(
          .init(database: sourceURL, lockTimeoutSeconds: 60))
        outcome.set(nil)
      } catch {
        outcome.set(error)
      }
    }
    let watcher = try source.server.connection(source.name)
    var blocked = false
    let deadline = Date().addingTimeInterval(60)
    while !blocked && Date() < deadline {
      blocked =
        try watcher.query(
          """
          SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE a.application_name <> 'dropper' AND NOT l.granted AND l.relation IS NOT NULL
            AND a.datname = current_database()
          """
        ).first?.first == "1"
      if !blocked { Thread.sleep(forTimeInterval: 0.01) }
    }
    #expect(blocked, "the backup must wait for the dropping session's lock")
    _ = try dropper.query("COMMIT")
    #expect(done.wait(timeout: .now() + 60) == .success)
    let error = try #require(outcome.error as? BackupError, "the backup must fail")
    #expect(error.status == .database)
    #expect(error.message.contains("victim"), "\(error.message)")
    #expect(error.message.contains("dropped"), "\(error.message)")
    #expect(!error.description.contains("\n"))
    let service = BackupService(backupDirectory: path)
    #expect(try service.list().allSatisfy { $0.status != .complete })
    #expect(
      try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".manifest.json") }
        .isEmpty)
  }
}

/// Restores send a table's rows in COPY's binary format when every column converts
/// (PGBinaryCopy), and go on in text from the first line that does not.
@Suite(.serialized) struct PostgresBinaryCopyTests {
  static let types = #"""
    CREATE SCHEMA "Odd Schema";
    CREATE TABLE "Odd Schema"."Bin ""T""" (i2 int2, "I 4" int4 PRIMARY KEY, i8 int8, b bool, t text, v varchar(12),
      c char(5), "Mixed Case" text);
    INSERT INTO "Odd Schema"."Bin ""T""" VALUES
      (-32768, -2147483648, -9223372036854775808, true, E'tab\there back\\slash', E'nl\nx cr\ry', 'ab', 'ünï 😀'),
      (32767, 2147483647, 9223372036854775807, false, E'\b\f\v', 'trailing  ', '', '\N'),
      (0, 0, 0, NULL, '', '', NULL, E'\\.'),
      (NULL, 1, NULL, true, NULL, NULL, 'abcde', 'NULL');
    INSERT INTO "Odd Schema"."Bin ""T""" SELECT g % 30000, g, g * 4000000000, g % 2 = 0, md5(g::text), 'v' || g, 'c',
      repeat('x', g % 50) FROM generate_series(2, 30000) g;
    CREATE TABLE pads (id int PRIMARY KEY, c char(6), u bpchar, v varchar(6), w char(3));
    INSERT INTO pads VALUES (1, ' a b  ', 'x  ', 'y  ', 'ü  '), (2, '      ', '   ', '  ', ''),
      (3, E'\t  ', ' ', NULL, 'ab'), (4, NULL, NULL, '', NULL);
    CREATE TABLE with_numeric (id int, n numeric);
    INSERT INTO with_numeric VALUES (1, 1.5);
    """#

  static let content = #"SELECT md5(string_agg(t::text, '|' ORDER BY "I 4")) FROM "Odd Schema"."Bin ""T""" t"#

  @Test func everyConvertedTypeRestoresExactly() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let source = try server.freshDatabase("src")
    try source.psql(Self.types)
    let dumped = try pgDump(source.url)
    let text = String(decoding: dumped.sink.allBytes, as: UTF8.self)
    let copyLines = text.split(separator: "\n").filter { $0.hasPrefix("COPY ") }.map { Array($0.utf8) }
    for (jobs, split) in [(1, Int64(64 << 20)), (2, 1 << 20)] {
      let target = try server.freshDatabase("dst\(jobs)")
      var request = dumped.request(jobs: jobs)
      request.splitTableBytes = split
      let report = try target.engine.restore(request, parts: dumped.opener)
      #expect(report.tables.first { $0.name == "Odd Schema.Bin \"T\"" }?.rows == 30003)
      #expect(try target.psql(Self.content) == source.psql(Self.content), "--jobs \(jobs)")
      // char(n) went without its trailing spaces and is stored padded as before; bpchar without
      // a length and varchar keep theirs (record output shows the stored values)
      let pads =
        "SELECT string_agg(t::text || octet_length(t.c) || octet_length(t.u), '|' ORDER BY id) FROM pads t"
      #expect(try target.psql(pads) == source.psql(pads), "--jobs \(jobs)")
      expectStatsMatch(try target.engine.tableStats(dumped.tables), dumped)
      // which tables went as binary: every column converts, or not
      let session = PGRestoreSession(db: try server.connection(target.name), request: request)
      #expect(try copyLines.map { try session.binaryCopy(for: $0) != nil } == [true, true, false])
      #expect(
        try session.binaryCopy(for: copyLines[1])?.kinds
          == [AI_SHELL_PG_INT4, AI_SHELL_PG_BPCHAR, AI_SHELL_PG_TEXT, AI_SHELL_PG_TEXT, AI_SHELL_PG_BPCHAR]
          .map {
            UInt8($0)
          })
      let statement = try session.binaryCopy(for: copyLines[0]).map {
        String(decoding: $0.statement, as: UTF8.self)
      }
      #expect(
        statement
          == #"COPY "Odd Schema"."Bin ""T""" (i2, "I 4", i8, b, t, v, c, "Mixed Case") FROM STDIN (FORMAT binary)"#
      )
    }
  }

  /// Rows in a form the converter leaves alone (a '+' sign, an octal escape) switch the table to
  /// text from that line on: every row arrives, counted once; rows the server refuses in the
  /// binary part fail the table as a text COPY's would (with --continue-on-error, only it).
  @Test func linesOutsideTheServersFormGoOnAsText() throws {
    guard let url = serverURL() else { return }
    let server = PGServer(url)
    let target = try server.freshDatabase("fallback")
    try target.psql(
      "CREATE TABLE t (id int, v varchar(3)); CREATE TABLE t2 (LIKE t); CREATE TABLE t3 (LIKE t); CREATE TABLE t4 (LIKE t)"
    )
    func part(_ table: String, _ rows: String) -> [UInt8] {
      Array("COPY public.\(table) (id, v) FROM stdin;\n\(rows)\\.\n".utf8)
    }
    let rows = "1\ta\n2\t\\N\n+3\tc\n4\t\\101\n5\te\n"
    let want = "1:a,2:null,3:c,4:A,5:e"
    func restored(_ table: String) throws -> String {
      try target.psql("SELECT string_agg(id || ':' || coalesce(v, 'null'), ',' ORDER BY id) FROM \(table)")
    }
    func session(continueOnError: Bool) throws -> PGRestoreSession {
      let request = RestoreRequest(
        format: .sql, parts: [], objects: [], tables: nil, dropExisting: false,
        continueOnError: continueOnError)
      return PGRestoreSession(db: try server.connection(target.name), request: request)
    }

    let s = try session(continueOnError: false)
    #expect(try s.binaryCopy(for: Array("COPY public.t (id, v) FROM stdin;".utf8)) != nil)
    try s.db.query("BEGIN")
    try s.runTablePart(reader: InputReader(MemorySource(part("t", rows), chunk: 3)), table: "public.t")
    try s.db.query("COMMIT")
    #expect(try restored("t") == want)
    #expect(s.report.tables.map(\.rows) == [5])

    // a split table's stream (PGSplitCopy) switches the same way
    let split = PGSplitCopy(open: { MemorySource(part("t3", rows)) }, table: "public.t3", streams: 1)
    try s.db.query("BEGIN")
    try s.loadStream(of: split)
    try s.db.query("COMMIT")
    #expect(try restored("t3") == want)
    #expect(s.report.tables.last?.rows == 5)

    // the rows of the json format's parts (converted to text lines first) go the same way
    try s.db.query("BEGIN")
    try s.copyIn(table: "public.t4", columns: ["id", "v"], options: "") { send in
      for line in rows.split(separator: "\n") { try send(Array((line + "\n").utf8)) }
    }
    try s.db.query("COMMIT")
    #expect(try restored("t4") == want)
    #expect(s.report.tables.last?.rows == 5)

    // 'abcd' is too long for varchar(3): refused when the binary COPY ends at the '+2' line
    let refused = part("t2", "1\tabcd\n+2\tx\n3\ty\n")
    let strict = try session(continueOnError: false)
    try strict.db.query("BEGIN")
    let error = #expect(throws: BackupError.self) {
      try strict.runTablePart(reader: InputReader(MemorySource(refused)), table: "public.t2")
    }
    #expect(error?.message.contains("value too long") == true)
    try strict.db.query("ROLLBACK")
    let lenient = try session(continueOnError: true)
    try lenient.db.query("BEGIN")
    try lenient.runTablePart(reader: InputReader(MemorySource(refused)), table: "public.t2")
    try lenient.runTablePart(reader: InputReader(MemorySource(part("t2", "7\tok\n"))), table: "public.t2")
    try lenient.db.query("COMMIT")
    #expect(lenient.report.statementsFailed == 1)
    #expect(lenient.report.errors.first?.contains("value too long") == true)
    #expect(try restored("t2") == "7:ok", "only the refused part's rows are left out")
    let splitError = #expect(throws: BackupError.self) {
      try strict.db.query("BEGIN")
      defer { _ = try? strict.db.query("ROLLBACK") }
      try strict.loadStream(of: PGSplitCopy(open: { MemorySource(refused) }, table: "public.t2", streams: 1))
    }
    #expect(splitError?.message.contains("value too long") == true)
  }
}
