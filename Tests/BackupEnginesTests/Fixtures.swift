import BackupEngines
import BackupModel
import CSQLite
import Foundation
import TestSupport

struct Dumped {
  var sink: MemorySink
  var result: DumpResult
  var format: DumpFormat

  func request(tables: Set<String>? = nil, dropExisting: Bool = false, continueOnError: Bool = false)
    -> RestoreRequest
  {
    RestoreRequest(
      format: format, parts: sink.parts.map { RestorePart(kind: $0.kind, table: $0.table) },
      objects: result.objects, tables: tables, dropExisting: dropExisting, continueOnError: continueOnError,
      lockTimeoutSeconds: 2)
  }

  var opener: MemoryParts { MemoryParts(sink.parts.map(\.bytes)) }

  var tableParts: [MemorySink.Part] { sink.parts.filter { $0.kind == .table } }
}

func dump(_ path: String, _ format: DumpFormat, tables: [String]? = nil) throws -> Dumped {
  let sink = MemorySink()
  let result = try SQLiteEngine(path: path).dump(
    options: DumpOptions(format: format, tables: tables, lockTimeoutSeconds: 2), to: sink)
  return Dumped(sink: sink, result: result, format: format)
}

/// Runs SQL with the sqlite3 shell and returns its output.
@discardableResult
func sqlite3CLI(_ db: String, _ sql: String) throws -> String {
  let r = try runProcess("sqlite3", [db], stdin: Data(sql.utf8))
  guard r.status == 0 else {
    throw BackupError(.failure, "sqlite3 failed: \(String(decoding: r.stderr, as: UTF8.self))")
  }
  return String(decoding: r.stdout, as: UTF8.self)
}

/// Every value the fidelity tests check, in every storage class, plus schema objects of each kind.
func makeFidelityDatabase(_ path: String) throws {
  let allBytes = (0..<256).map { String(format: "%02X", $0) }.joined()
  try sqlite3CLI(
    path,
    #"""
    PRAGMA user_version=42;
    PRAGMA application_id=1234567;
    CREATE TABLE nums(id INTEGER PRIMARY KEY, i INTEGER, r REAL, anycol);
    INSERT INTO nums(i) VALUES(0),(1),(-1),(9223372036854775807),(-9223372036854775808);
    INSERT INTO nums(anycol) VALUES(-0.0),(1e308),(0.1),(1.5),(1e999),(-1e999),(1e-300),(5e-324),
      (-5.269429364979957e-297),(123.0),(1e16),(2.5e-5);
    INSERT INTO nums(r) VALUES(0.1),(1e308),(-1e999),(2.0),(-0.0);
    CREATE TABLE texts(id INTEGER PRIMARY KEY, t TEXT, b BLOB, mixed);
    INSERT INTO texts(t) VALUES('héllo 😀 é e\#u{301}'),('line1'||char(10)||'line2'),
      ('cr'||char(13)||'x'||char(13)||char(10)||'y'||char(13)),('tab'||char(9)||'x'),
      ('ctl'||char(1)||char(27)||char(31)||char(127)),('it''s "quoted" \ back'),(''),(NULL),
      ('-- ai-shell: {"type":"x"}'||char(10)||';'||char(10)||'COMMIT;'),('a,b'||char(10)||'"c"'),
      (CAST(X'6100620063' AS TEXT)),(CAST(X'FFFE41C0' AS TEXT)),('X''00'''),('Inf'),('');
    INSERT INTO texts(b) VALUES(X'\#(allBytes)'),(X''),(X'00'),(NULL);
    INSERT INTO texts(mixed) VALUES(1),(1.5),('text'),(X'01FF'),(NULL),(''),('12'),(-0.0);
    CREATE TABLE "sp ace"("col ""q""" TEXT, 'single''q' INTEGER, "select" INTEGER, "ünï" TEXT, "a/b");
    INSERT INTO "sp ace" VALUES('x', 1, 2, 'ü', 3),(NULL, NULL, NULL, NULL, NULL);
    CREATE TABLE "we""ird'name" (x);
    INSERT INTO "we""ird'name" VALUES(1),(2);
    CREATE TABLE "select"("from" INTEGER PRIMARY KEY, "where" TEXT);
    INSERT INTO "select" VALUES(7, 'w');
    CREATE TABLE "ünïcødé/tbl"(x);
    INSERT INTO "ünïcødé/tbl" VALUES('ok');
    CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT UNIQUE);
    CREATE TABLE child(id INTEGER PRIMARY KEY AUTOINCREMENT,
      parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE, note TEXT);
    CREATE INDEX child_parent ON child(parent_id);
    CREATE INDEX child_partial ON child(note) WHERE note IS NOT NULL;
    CREATE INDEX child_expr ON child(lower(note), parent_id + 1);
    CREATE VIEW child_view AS SELECT c.id, p.name FROM child c JOIN parent p ON p.id = c.parent_id;
    CREATE TABLE log(id INTEGER PRIMARY KEY, msg TEXT);
    CREATE TRIGGER child_ins AFTER INSERT ON child BEGIN
      INSERT INTO log(msg) VALUES('child ' || new.id);
    END;
    INSERT INTO parent VALUES(1,'p1'),(2,'p2');
    INSERT INTO child(parent_id, note) VALUES(1,'a'),(2,NULL),(1,'c'),(2,'d');
    DELETE FROM child WHERE id = 4;
    CREATE TABLE wr(k TEXT PRIMARY KEY, v INTEGER) WITHOUT ROWID;
    INSERT INTO wr VALUES('b',2),('a',1),('c',3);
    CREATE TABLE st(id INTEGER PRIMARY KEY, x INTEGER, y REAL, z TEXT, w ANY) STRICT;
    INSERT INTO st VALUES(1, 5, 2.5, 'z', 1.0),(2, -5, 1e10, 'zz', 'any'),(3, NULL, -0.0, NULL, X'00');
    CREATE TABLE gen(a INTEGER, b INTEGER, c INTEGER GENERATED ALWAYS AS (a+b) VIRTUAL,
      d TEXT GENERATED ALWAYS AS (a || '-' || b) STORED);
    INSERT INTO gen(a,b) VALUES(1,2),(3,4);
    CREATE VIRTUAL TABLE docs USING fts5(body);
    INSERT INTO docs(body) VALUES('hello world'),('second doc');
    CREATE TABLE randoms(id INTEGER PRIMARY KEY, v);
    """#)
  // random REAL bit patterns (SQLite before 3.43 misreads some shortest decimal forms)
  var db: OpaquePointer?
  guard sqlite3_open(path, &db) == SQLITE_OK else { throw BackupError(.failure, "open") }
  defer { sqlite3_close(db) }
  var stmt: OpaquePointer?
  sqlite3_exec(db, "BEGIN", nil, nil, nil)
  sqlite3_prepare_v2(db, "INSERT INTO randoms(v) VALUES(?)", -1, &stmt, nil)
  var rng = SystemRandomNumberGenerator()
  var inserted = 0
  while inserted < 3000 {
    let d = Double(bitPattern: rng.next())
    if d.isNaN { continue }
    sqlite3_bind_double(stmt, 1, d)
    sqlite3_step(stmt)
    sqlite3_reset(stmt)
    inserted += 1
  }
  sqlite3_finalize(stmt)
  sqlite3_exec(db, "COMMIT", nil, nil, nil)
}
