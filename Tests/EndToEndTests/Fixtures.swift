import Foundation
import TestSupport

/// A small database touching every feature the SQL dump must carry.
let sampleSQL = """
  PRAGMA user_version = 42;
  PRAGMA application_id = 1234567;
  CREATE TABLE accounts(id INTEGER PRIMARY KEY AUTOINCREMENT, owner TEXT NOT NULL, balance INTEGER NOT NULL);
  CREATE TABLE "order items"("line no" INTEGER, "select" TEXT, "naïve ☃" REAL, data BLOB, note);
  CREATE TABLE kv(k TEXT PRIMARY KEY, v ANY) STRICT, WITHOUT ROWID;
  CREATE TABLE calc(a INTEGER, b INTEGER, s INTEGER GENERATED ALWAYS AS (a + b) STORED, v INTEGER AS (a * b));
  CREATE TABLE child(id INTEGER PRIMARY KEY, account_id INTEGER REFERENCES accounts(id) ON DELETE CASCADE);
  CREATE INDEX accounts_owner ON accounts(owner);
  CREATE INDEX items_partial ON "order items"("line no") WHERE "line no" > 1;
  CREATE INDEX items_expr ON "order items"(lower("select"));
  CREATE VIEW rich AS SELECT owner FROM accounts WHERE balance > 100;
  CREATE TRIGGER accounts_audit AFTER UPDATE ON accounts BEGIN UPDATE accounts SET owner = owner WHERE id = -1; END;
  INSERT INTO accounts(owner, balance) VALUES ('alice', 500), ('bob', 50), ('carol''s', 9223372036854775807), ('dave', -9223372036854775808);
  DELETE FROM accounts WHERE owner = 'dave';
  INSERT INTO "order items" VALUES (1, 'it''s "quoted"', 0.1, X'00FF00', NULL);
  INSERT INTO "order items" VALUES (2, '', -0.0, X'', 'x');
  INSERT INTO "order items" VALUES (3, NULL, 1e308, NULL, 42);
  INSERT INTO "order items" VALUES (4, 'line1' || char(10) || 'line2' || char(13) || char(9) || char(1), 1e999, randomblob(64), 1.5);
  INSERT INTO "order items" VALUES (5, '😀 é ñ 中文', -1e999, X'0001020304', X'CAFE');
  INSERT INTO kv VALUES ('a', 1), ('b', 'text'), ('c', 2.5), ('d', X'00'), ('e', NULL);
  INSERT INTO calc(a, b) VALUES (2, 3), (-4, 5);
  INSERT INTO child VALUES (1, 1), (2, 2);
  """

/// The full logical content of a database, for comparing a restore with its source.
func snapshot(_ path: String) throws -> String {
  let dump = try sqlite3(path, ".dump")
  let pragmas = try sqlite3(path, "PRAGMA user_version; PRAGMA application_id;")
  let seq = try sqlite3(path, "SELECT name, seq FROM sqlite_sequence ORDER BY name")
  return dump + "\n-- pragmas\n" + pragmas + "-- seq\n" + seq
}

/// A database of `rows` rows of about 200 bytes each, written with one sqlite3 call.
func makeBigDatabase(_ path: String, rows: Int) throws {
  try makeSQLite(
    path,
    """
    PRAGMA journal_mode=WAL;
    CREATE TABLE big(id INTEGER PRIMARY KEY, payload TEXT, n REAL, b BLOB);
    INSERT INTO big(payload, n, b)
      WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < \(rows))
      SELECT printf('row %d %s', i, hex(randomblob(60))), i * 0.5, randomblob(32) FROM s;
    """)
}

/// Flips bits (`mask`) of the byte in the middle of a file, as a damaged disk would.
func flipMiddleByte(of file: String, mask: UInt8) throws {
  guard let handle = FileHandle(forUpdatingAtPath: file) else { throw RunnerError("cannot open \(file)") }
  defer { try? handle.close() }
  let size = try handle.seekToEnd()
  try handle.seek(toOffset: size / 2)
  guard let byte = try handle.read(upToCount: 1)?.first else { throw RunnerError("\(file) is empty") }
  try handle.seek(toOffset: size / 2)
  try handle.write(contentsOf: Data([byte ^ mask]))
}
