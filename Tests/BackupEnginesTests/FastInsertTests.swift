import BackupModel
import CSQLite
import Foundation
import TestSupport
import Testing

@testable import BackupEngines

@Suite struct FastInsertTests {
  func database() throws -> (TempDir, SQLiteConnection) {
    let dir = TempDir()
    let db = try SQLiteConnection(path: dir.file("t.db"), flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
    try db.exec(
      """
      CREATE TABLE "we""ird t"("a b", "c""d", e);
      CREATE TABLE g(x INTEGER, y INTEGER GENERATED ALWAYS AS (x * 2));
      """)
    return (dir, db)
  }

  func rows(_ db: SQLiteConnection, _ sql: String) throws -> [String] {
    let s = try db.prepare(sql)
    var out: [String] = []
    while try s.step() { out.append(s.string(0) ?? "NULL") }
    return out
  }

  @Test func bindsEveryShapeDumpWrites() throws {
    let (dir, db) = try database()
    defer { withExtendedLifetime(dir) {} }
    let fast = FastInsert(db: db)
    let lines = [
      #"INSERT INTO "we""ird t" VALUES(1,'it''s',X'00FF');"#,
      #"INSERT INTO "we""ird t" VALUES(-9223372036854775808,NULL,-0.0);"#,
      #"INSERT INTO "we""ird t" VALUES(1e999,'',X'');"#,
      #"INSERT INTO "we""ird t" VALUES(0.1,CAST(X'610D62' AS TEXT),1.5e-300);"#,
      #"INSERT INTO "g"("x") VALUES(21);"#,
    ]
    for line in lines {
      let outcome = fast.run(Array((line + "\n").utf8))
      guard case .done = outcome else {
        Issue.record("not taken by the fast path: \(line)")
        continue
      }
    }
    #expect(
      try rows(db, #"SELECT quote("a b") || '|' || quote("c""d") || '|' || quote(e) FROM "we""ird t""#) == [
        "1|'it''s'|X'00FF'",
        "-9223372036854775808|NULL|0.0",
        "Inf|''|X''",
        "0.1|'a\rb'|1.5e-300",
      ])
    #expect(
      try rows(db, "SELECT typeof(e) FROM \"we\"\"ird t\" WHERE \"a b\" = -9223372036854775808") == ["real"])
    #expect(try rows(db, "SELECT y FROM g") == ["42"])
  }

  @Test func leavesOtherShapesToSQL() throws {
    let (dir, db) = try database()
    defer { withExtendedLifetime(dir) {} }
    let fast = FastInsert(db: db)
    for line in [
      #"INSERT INTO "we""ird t" VALUES((4503599627370497.0/2.0),1,2);"#,  // an exact-real expression
      #"INSERT INTO "we""ird t" VALUES('two"#,  // text spanning lines
      #"INSERT INTO "we""ird t" VALUES(1,2);"#,  // too few values
      #"INSERT INTO "we""ird t" VALUES(1,2,3); SELECT 1;"#,  // more after the statement
      #"INSERT INTO "nope" VALUES(1);"#,  // no such table
      #"INSERT INTO t VALUES(1);"#,  // not quoted as dump quotes
      "UPDATE x SET y = 1;",
    ] {
      #expect(fast.run(Array((line + "\n").utf8)) == nil, "\(line)")
    }
    #expect(try rows(db, #"SELECT count(*) FROM "we""ird t""#) == ["0"])
  }

  @Test func reportsConstraintFailures() throws {
    let (dir, db) = try database()
    defer { withExtendedLifetime(dir) {} }
    try db.exec("CREATE TABLE u(x UNIQUE); INSERT INTO u VALUES (1);")
    let fast = FastInsert(db: db)
    guard case .failed(let message) = fast.run(Array("INSERT INTO \"u\" VALUES(1);\n".utf8)) else {
      Issue.record("a duplicate must fail")
      return
    }
    #expect(message.contains("UNIQUE"))
    guard case .done = fast.run(Array("INSERT INTO \"u\" VALUES(2);\n".utf8)) else {
      Issue.record("the statement must be usable after a failure")
      return
    }
  }
}

@Suite struct ByteEncodingTests {
  @Test func hexOfEveryByteValueAppendsToWhatIsThere() {
    let all = (0...255).map { UInt8($0) }
    var out = Array("X'".utf8)
    all.withUnsafeBytes { Bytes.appendHex($0, to: &out) }
    [UInt8]().withUnsafeBytes { Bytes.appendHex($0, to: &out) }
    let expected = "X'" + all.map { String(format: "%02X", $0) }.joined()
    #expect(String(decoding: out, as: UTF8.self) == expected)
    var empty: [UInt8] = []
    [UInt8]().withUnsafeBytes { Bytes.appendHex($0, to: &empty) }
    #expect(empty.isEmpty)
  }
}
