import BackupEngines
import BackupModel
import CSQLite
import Foundation
import TestSupport
import Testing

/// Schema rows without root pages, sorted: equal for a source and a faithful restore.
func schemaOf(_ db: String) throws -> String {
  try sqlite3CLI(db, "SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY name;")
}

func readDouble(_ path: String, _ sql: String) throws -> Double {
  var db: OpaquePointer?
  defer { sqlite3_close(db) }
  guard sqlite3_open(path, &db) == SQLITE_OK else { throw BackupError(.failure, "open \(path)") }
  var stmt: OpaquePointer?
  defer { sqlite3_finalize(stmt) }
  guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK, sqlite3_step(stmt) == SQLITE_ROW,
    sqlite3_column_type(stmt, 0) == SQLITE_FLOAT
  else { throw BackupError(.failure, "no REAL from \(sql)") }
  return sqlite3_column_double(stmt, 0)
}

func statsOf(_ db: String, _ tables: [String]) throws -> [String: TableStats] {
  try SQLiteEngine(path: db).tableStats(tables)
}

func expectMatchesParts(_ stats: [String: TableStats], _ dumped: Dumped) {
  for part in dumped.tableParts {
    let s = stats[part.table!]
    #expect(s?.rows == part.rows, "rows of \(part.table!)")
    #expect(s?.contentChecksum == part.contentChecksum, "checksum of \(part.table!)")
  }
}

@Suite struct SQLiteFidelityTests {
  @Test(arguments: DumpFormat.allCases)
  func roundTrip(format: DumpFormat) throws {
    let dir = TempDir()
    let source = dir.file("source.db")
    try makeFidelityDatabase(source)
    let dumped = try dump(source, format)
    let tables = dumped.tableParts.map { $0.table! }
    #expect(
      Set(tables) == [
        "nums", "texts", "sp ace", "we\"ird'name", "select", "ünïcødé/tbl", "parent", "child", "log", "wr",
        "st", "gen", "docs", "randoms",
      ])
    #expect(dumped.sink.parts.first?.kind == .schema)
    #expect(dumped.sink.parts.last?.kind == .postData)
    expectMatchesParts(try statsOf(source, tables), dumped)

    let target = dir.file("restored.db")
    let engine = SQLiteEngine(path: target)
    let notes = try engine.checkRestore(dumped.request())
    #expect(notes.contains { $0.hasPrefix("would create") })
    #expect(!FileManager.default.fileExists(atPath: target))
    let report = try engine.restore(dumped.request(), parts: dumped.opener)
    #expect(report.statementsFailed == 0)
    #expect(report.notes.contains("created \(target)"))
    #expect(report.tables.first { $0.name == "nums" }?.rows == 22)
    expectMatchesParts(try statsOf(target, tables), dumped)
    #expect(try schemaOf(target) == schemaOf(source))

    // specific values
    let check = """
      SELECT quote(i), typeof(r), quote(anycol) FROM nums ORDER BY id;
      SELECT count(*) FROM texts WHERE t = '';
      SELECT count(*) FROM texts WHERE t IS NULL AND b IS NULL AND mixed IS NULL;
      SELECT hex(t), typeof(t), hex(b), typeof(b), typeof(mixed), quote(mixed) FROM texts ORDER BY id;
      SELECT seq FROM sqlite_sequence WHERE name = 'child';
      PRAGMA user_version; PRAGMA application_id;
      SELECT * FROM child_view ORDER BY id;
      SELECT count(*) FROM log;
      SELECT a, b, c, d FROM gen;
      SELECT rowid, body FROM docs WHERE docs MATCH 'world';
      SELECT * FROM wr;
      SELECT typeof(w), typeof(y) FROM st;
      """
    let expected = try sqlite3CLI(source, check)
    #expect(try sqlite3CLI(target, check) == expected)
    #expect(expected.contains("\n4\n42\n1234567\n"))
    #expect(try sqlite3CLI(target, "SELECT count(*) FROM texts WHERE t = '';") == "2\n")
    // -0.0 keeps its sign in a column without affinity
    #expect(try readDouble(source, "SELECT anycol FROM nums WHERE id = 6").bitPattern == (-0.0).bitPattern)
    #expect(try readDouble(target, "SELECT anycol FROM nums WHERE id = 6").bitPattern == (-0.0).bitPattern)
    // the trigger exists (fires on a new insert) and did not fire during the restore
    try sqlite3CLI(target, "INSERT INTO child(parent_id) VALUES(1);")
    #expect(
      try sqlite3CLI(target, "SELECT id FROM child ORDER BY id DESC LIMIT 1; SELECT count(*) FROM log;")
        == "5\n5\n")
  }

  @Test func sqlPartsPipeIntoSqlite3() throws {
    let dir = TempDir()
    let source = dir.file("source.db")
    try makeFidelityDatabase(source)
    let dumped = try dump(source, .sql)
    let file = dir.file("backup.sql")
    try Data(dumped.sink.allBytes).write(to: URL(fileURLWithPath: file))
    let target = dir.file("cli.db")
    let r = try shell("sqlite3 '\(target)' < '\(file)'")
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stderr.isEmpty)
    let tables = dumped.tableParts.map { $0.table! }
    expectMatchesParts(try statsOf(target, tables), dumped)
    #expect(try schemaOf(target) == schemaOf(source))
    #expect(try sqlite3CLI(target, "PRAGMA user_version; SELECT seq FROM sqlite_sequence;") == "42\n4\n")
  }

  @Test func csvPartsAreATarArchive() throws {
    let dir = TempDir()
    let source = dir.file("source.db")
    try makeFidelityDatabase(source)
    let dumped = try dump(source, .csv)
    let file = dir.file("backup.tar")
    try Data(dumped.sink.allBytes).write(to: URL(fileURLWithPath: file))
    let out = dir.file("x")
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    let r = try shell("tar -xf '\(file)' -C '\(out)' && ls '\(out)'")
    #expect(r.status == 0, "\(r.stderr)")
    let names = Set(r.stdout.split(separator: "\n").map(String.init))
    #expect(names.contains("schema.sql"))
    #expect(names.contains("post-data.sql"))
    #expect(names.contains("nums.csv"))
    #expect(names.contains("ünïcødé%2Ftbl.csv"))
    let wr = try String(contentsOfFile: out + "/wr.csv", encoding: .utf8)
    #expect(wr == "k,v\n\"a\",1\n\"b\",2\n\"c\",3\n")
    // schema.sql + post-data.sql alone build the schema with the sqlite3 shell
    let target = dir.file("schema-only.db")
    let s = try shell("cat '\(out)/schema.sql' '\(out)/post-data.sql' | sqlite3 '\(target)'")
    #expect(s.status == 0, "\(s.stderr)")
  }

  @Test func jsonLinesLookRight() throws {
    let dir = TempDir()
    let source = dir.file("source.db")
    try makeFidelityDatabase(source)
    let dumped = try dump(source, .json, tables: ["wr", "nums"])
    let schema = dumped.sink.parts[0].text.split(separator: "\n")
    #expect(schema[0] == #"{"$backup":{"engine":"sqlite","format":"json","formatVersion":1}}"#)
    #expect(schema[1] == #"{"$pragma":"user_version","value":42}"#)
    let wr = dumped.tableParts.first { $0.table == "wr" }!.text
    #expect(
      wr == """
        {"$table":"wr","columns":[{"name":"k","type":"TEXT"},{"name":"v","type":"INTEGER"}]}
        {"k":"a","v":1}
        {"k":"b","v":2}
        {"k":"c","v":3}

        """)
    let nums = dumped.tableParts.first { $0.table == "nums" }!.text
    #expect(nums.contains(#""anycol":{"$real":"Infinity"}"#))
    #expect(nums.contains(#""i":-9223372036854775808"#))
    #expect(nums.contains(#""anycol":-0.0"#))
    #expect(nums.contains(#""anycol":123.0"#))
  }
}

@Suite struct SQLiteBehaviourTests {
  @Test func probeListsUserTables() throws {
    let dir = TempDir()
    let source = dir.file("source.db")
    try makeFidelityDatabase(source)
    let p = try SQLiteEngine(path: source).probe()
    #expect(p.engine == .sqlite)
    #expect(p.serverVersion.hasPrefix("3."))
    #expect((p.sizeBytes ?? 0) > 0)
    #expect(p.tables.contains("docs"))
    #expect(p.tables.contains("child"))
    #expect(!p.tables.contains { $0.hasPrefix("sqlite_") || $0.hasPrefix("docs_") })
  }

  @Test func missingAndNotADatabase() throws {
    let dir = TempDir()
    #expect { try SQLiteEngine(path: dir.file("nope.db")).probe() } throws: {
      ($0 as? BackupError)?.status == .notFound
    }
    let text = dir.file("text.db")
    try "hello, this is not a database at all, just some text that is long enough".write(
      toFile: text, atomically: true, encoding: .utf8)
    #expect { try SQLiteEngine(path: text).probe() } throws: {
      let e = $0 as? BackupError
      return e?.status == .database && e?.message == "\(text) is not a SQLite database"
    }
    #expect { try dump(text, .sql) } throws: { ($0 as? BackupError)?.status == .database }
    let source = dir.file("source.db")
    try sqlite3CLI(source, "CREATE TABLE a(x);")
    let d = try dump(source, .sql)
    #expect { try SQLiteEngine(path: text).restore(d.request(), parts: d.opener) } throws: {
      ($0 as? BackupError)?.status == .database
    }
  }

  @Test func missingTableIsAnErrorBeforeWriting() throws {
    let dir = TempDir()
    let source = dir.file("source.db")
    try sqlite3CLI(source, "CREATE TABLE a(x);")
    let sink = MemorySink()
    #expect {
      try SQLiteEngine(path: source).dump(options: DumpOptions(format: .sql, tables: ["a", "x"]), to: sink)
    } throws: {
      let e = $0 as? BackupError
      return e?.status == .notFound && e?.message == "table \"x\" does not exist in \(source)"
    }
    #expect(sink.parts.isEmpty)
  }

  @Test func lockedDatabase() throws {
    let dir = TempDir()
    let source = dir.file("source.db")
    try sqlite3CLI(source, "PRAGMA journal_mode=DELETE; CREATE TABLE a(x); INSERT INTO a VALUES(1);")
    var db: OpaquePointer?
    #expect(sqlite3_open(source, &db) == SQLITE_OK)
    defer { sqlite3_close(db) }
    #expect(sqlite3_exec(db, "BEGIN EXCLUSIVE; INSERT INTO a VALUES(2);", nil, nil, nil) == SQLITE_OK)
    let start = Date()
    #expect {
      try SQLiteEngine(path: source).dump(
        options: DumpOptions(format: .sql, lockTimeoutSeconds: 0.5), to: MemorySink())
    } throws: {
      let e = $0 as? BackupError
      return e?.status == .database && e?.message.contains("is locked by another connection") == true
    }
    #expect(Date().timeIntervalSince(start) >= 0.4)
    sqlite3_exec(db, "COMMIT", nil, nil, nil)
    let d = try dump(source, .sql)
    #expect(d.tableParts[0].rows == 2)
  }

  func fkDatabase(_ dir: TempDir) throws -> String {
    let source = dir.file("source.db")
    try sqlite3CLI(
      source,
      """
      CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, x);
      CREATE INDEX a_x ON a(x);
      CREATE TABLE b(id INTEGER PRIMARY KEY, a_id REFERENCES a(id));
      CREATE TRIGGER a_trg AFTER DELETE ON a BEGIN DELETE FROM b WHERE a_id = old.id; END;
      CREATE VIEW v AS SELECT * FROM a JOIN b ON b.a_id = a.id;
      INSERT INTO a(x) VALUES(1),(2),(3);
      INSERT INTO b VALUES(1, 1);
      """)
    return source
  }

  @Test(arguments: DumpFormat.allCases)
  func tableFilters(format: DumpFormat) throws {
    let dir = TempDir()
    let source = try fkDatabase(dir)
    let only = try dump(source, format, tables: ["a"])
    #expect(only.tableParts.map(\.table) == ["a"])
    #expect(only.result.objects.map(\.name) == ["a", "a_x", "a_trg", "a"])
    #expect(only.result.objects.map(\.type) == ["table", "index", "trigger", "sequence"])

    let full = try dump(source, format)
    #expect(full.result.objects.map(\.type) == ["table", "table", "index", "trigger", "view", "sequence"])
    let target = dir.file("t.db")
    let engine = SQLiteEngine(path: target)
    let notes = try engine.checkRestore(full.request(tables: ["a"]))
    #expect(notes.contains("view \"v\" skipped: --tables given"))
    #expect(notes.contains("would create 1 table, 1 index, 1 trigger"))
    let report = try engine.restore(full.request(tables: ["a"]), parts: full.opener)
    #expect(report.tables == [TableRestoreResult(name: "a", rows: 3)])
    #expect(
      try sqlite3CLI(target, "SELECT type, name FROM sqlite_schema ORDER BY name;")
        == "table|a\ntrigger|a_trg\nindex|a_x\ntable|sqlite_sequence\n")
    #expect(try sqlite3CLI(target, "SELECT seq FROM sqlite_sequence; PRAGMA user_version;") == "3\n0\n")
  }

  @Test(arguments: DumpFormat.allCases)
  func conflictsRefusedOrReplaced(format: DumpFormat) throws {
    let dir = TempDir()
    let source = try fkDatabase(dir)
    let d = try dump(source, format)
    let target = dir.file("t.db")
    try sqlite3CLI(target, "CREATE TABLE a(old); INSERT INTO a VALUES('old'); CREATE TABLE keep(k);")
    let engine = SQLiteEngine(path: target)
    for attempt in [
      { try engine.checkRestore(d.request()) }, { try engine.restore(d.request(), parts: d.opener).notes },
    ] {
      #expect { try attempt() } throws: {
        let e = $0 as? BackupError
        return e?.status == .refused && e?.message == "target \(target) already has table \"a\""
          && e?.hint == "use --drop-existing to replace them"
      }
    }
    #expect(try sqlite3CLI(target, "SELECT * FROM a;") == "old\n")
    #expect(try engine.checkRestore(d.request(dropExisting: true)).contains("would drop table \"a\""))
    let report = try engine.restore(d.request(dropExisting: true), parts: d.opener)
    #expect(report.notes.contains("dropped table \"a\""))
    expectMatchesParts(try statsOf(target, ["a", "b"]), d)
    #expect(try sqlite3CLI(target, "SELECT count(*) FROM keep;") == "0\n")
    // a second full restore conflicts on every object
    #expect { try engine.checkRestore(d.request()) } throws: {
      ($0 as? BackupError)?.message == "target \(target) already has table \"a\" (and 4 more)"
    }
  }

  @Test(arguments: DumpFormat.allCases)
  func corruptPartRollsBack(format: DumpFormat) throws {
    let dir = TempDir()
    let source = dir.file("source.db")
    try makeFidelityDatabase(source)
    let d = try dump(source, format)
    let index = d.sink.parts.firstIndex { $0.table == "randoms" }!
    let opener = d.opener
    opener.failPart = index
    opener.failAfter = d.sink.parts[index].bytes.count / 2
    // a new target is removed
    let fresh = dir.file("fresh.db")
    #expect { try SQLiteEngine(path: fresh).restore(d.request(), parts: opener) } throws: {
      ($0 as? BackupError)?.status == .corrupt
    }
    #expect(!FileManager.default.fileExists(atPath: fresh))
    #expect(!FileManager.default.fileExists(atPath: fresh + "-journal"))
    // an existing target is left as it was
    let existing = dir.file("existing.db")
    try sqlite3CLI(existing, "CREATE TABLE keep(k); INSERT INTO keep VALUES(1);")
    let before = try schemaOf(existing)
    #expect { try SQLiteEngine(path: existing).restore(d.request(), parts: opener) } throws: {
      ($0 as? BackupError)?.status == .corrupt
    }
    #expect(try schemaOf(existing) == before)
    #expect(try sqlite3CLI(existing, "SELECT * FROM keep;") == "1\n")
  }

  @Test func continueOnErrorCountsFailures() throws {
    let dir = TempDir()
    let source = try fkDatabase(dir)
    let d = try dump(source, .sql)
    var parts = d.sink.parts.map(\.bytes)
    let index = d.sink.parts.firstIndex { $0.table == "b" }!
    parts[index] += Array("INSERT INTO nope VALUES(1);\nINSERT INTO \"b\" VALUES(2, 2);\n".utf8)
    let target = dir.file("t.db")
    #expect { try SQLiteEngine(path: target).restore(d.request(), parts: MemoryParts(parts)) } throws: {
      let e = $0 as? BackupError
      return e?.status == .database && e?.message.contains("no such table: nope") == true
    }
    #expect(!FileManager.default.fileExists(atPath: target))
    let report = try SQLiteEngine(path: target).restore(
      d.request(continueOnError: true), parts: MemoryParts(parts))
    #expect(report.statementsFailed == 1)
    #expect(report.errors.count == 1)
    #expect(report.errors[0].contains("no such table: nope"))
    #expect(report.tables.first { $0.name == "b" }?.rows == 2)
    #expect(try sqlite3CLI(target, "SELECT count(*) FROM b;") == "2\n")
  }

  @Test func exactRealsSurviveSQLText() throws {
    let dir = TempDir()
    let source = dir.file("source.db")
    var db: OpaquePointer?
    #expect(sqlite3_open(source, &db) == SQLITE_OK)
    sqlite3_exec(db, "CREATE TABLE r(v)", nil, nil, nil)
    let values: [Double] = [
      -5.269429364979957e-297, 3.585063222302685e-123, .leastNonzeroMagnitude, -.leastNonzeroMagnitude,
      .greatestFiniteMagnitude,
      .leastNormalMagnitude, 0.1, -0.0, 1e23,
    ]
    var stmt: OpaquePointer?
    sqlite3_prepare_v2(db, "INSERT INTO r VALUES(?)", -1, &stmt, nil)
    for v in values {
      sqlite3_bind_double(stmt, 1, v)
      sqlite3_step(stmt)
      sqlite3_reset(stmt)
    }
    sqlite3_finalize(stmt)
    sqlite3_close(db)
    let d = try dump(source, .sql)
    let file = dir.file("r.sql")
    try Data(d.sink.allBytes).write(to: URL(fileURLWithPath: file))
    let target = dir.file("cli.db")
    #expect(try shell("sqlite3 '\(target)' < '\(file)'").status == 0)
    expectMatchesParts(try statsOf(target, ["r"]), d)
  }
}
