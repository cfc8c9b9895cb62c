import BackupCore
import BackupModel
import Foundation
import TestSupport
import Testing

@testable import BackupEngines

// These tests need a real MariaDB server: scripts/test.sh starts one with
// scripts/mariadb-test-server.sh and exports AI_SHELL_TEST_MARIADB_URL (a user with ALL privileges
// and a password, over TCP on 127.0.0.1).

func mariadbURL(_ test: String = #function) -> String? {
  testServerURL("AI_SHELL_TEST_MARIADB_URL", test: test)
}

/// The test server, reached with the mariadb client (password through MYSQL_PWD).
@dynamicMemberLookup struct MyServer {
  let address: ServerAddress
  init(_ url: String) { address = ServerAddress(url, defaultPort: 3306, defaultUser: "root") }
  subscript<T>(dynamicMember path: KeyPath<ServerAddress, T>) -> T { address[keyPath: path] }
  func url(db: String, password: String? = nil) -> String { address.url(db: db, password: password) }
  func passwordlessURL(db: String) -> String { address.passwordlessURL(db: db) }

  /// Runs the mariadb client (script on stdin) against a database; throws on any error.
  @discardableResult
  func client(_ db: String?, _ sql: String, bytes: [UInt8]? = nil) throws -> String {
    var args = [
      "--no-defaults", "--default-character-set=utf8mb4", "--protocol=TCP", "-h", self.host, "-P", self.port,
      "-u", self.user, "-N", "-B",
    ]
    if let db { args.append(db) }
    let r = try runProcess(
      "mariadb", args, stdin: bytes.map { Data($0) } ?? Data(sql.utf8),
      environment: ["MYSQL_PWD": self.password])
    guard r.status == 0 else {
      throw BackupError(.failure, "mariadb failed: \(String(decoding: r.stderr, as: UTF8.self))")
    }
    return String(decoding: r.stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
  }
}

extension MyServer: ScratchHost {
  func engine(url: String) -> MariaDBEngine { MariaDBEngine(url: url) }
  func run(_ db: String, _ sql: String) throws -> String { try client(db, sql) }
  func createDatabase(_ name: String) throws {
    try client(nil, "CREATE DATABASE `\(name)` CHARACTER SET utf8mb4")
  }
  func databaseExists(_ name: String) throws -> Bool {
    try client(nil, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '\(name)'") == "1"
  }
  func dropDatabase(_ name: String) { _ = try? client(nil, "DROP DATABASE IF EXISTS `\(name)`") }
}

typealias MyScratch = ScratchDatabase<MyServer>

func myDump(_ url: String, tables: [String]? = nil, format: DumpFormat = .sql, jobs: Int = 1) throws
  -> EngineDump
{
  try EngineDump(
    MariaDBEngine(url: url), tables: tables, format: format, jobs: jobs,
    createdAt: Date(timeIntervalSince1970: 1_700_000_000))
}

/// Every type and object kind the fidelity tests check.
let myFidelitySQL = #"""
  CREATE TABLE nums (id INT PRIMARY KEY AUTO_INCREMENT, ti TINYINT, b1 TINYINT(1), bi BIGINT, ubi BIGINT UNSIGNED,
    d DECIMAL(65,30), f FLOAT, db DOUBLE, bits BIT(13), bit1 BIT(1), y YEAR) ENGINE=InnoDB;
  INSERT INTO nums VALUES
    (1, -128, 1, -9223372036854775808, 18446744073709551615,
     -99999999999999999999999999999999999.999999999999999999999999999999, -3.40282e38, -1.7976931348623157e308,
     b'1111111111111', b'1', 1901),
    (2, 127, 0, 9223372036854775807, 0, 0.000000000000000000000000000001, 1.17549e-38, 2.2250738585072014e-308,
     b'0', b'0', 2155),
    (3, 0, NULL, 0, 9223372036854775808, 12345678901234567890.123456789012345678901234567890, 0.1, 0.1,
     NULL, NULL, 0),
    (4, NULL, NULL, NULL, NULL, NULL, NULL, 4.9e-324, b'1010101010101', NULL, NULL),
    (5, 1, 1, 1, 1, -0.5, 3.4028234e38, 1.7976931348623157e308, b'1', b'1', 2000);
  INSERT INTO nums (ti) VALUES (9);
  DELETE FROM nums WHERE ti = 9;
  CREATE TABLE texts (id INT PRIMARY KEY, t VARCHAR(200), c CHAR(10), tx TEXT, lt LONGTEXT,
    bin BINARY(4), vb VARBINARY(300), bl BLOB, lb LONGBLOB, j JSON, e ENUM('a', 'b c', ''), s SET('x', 'y', 'z'))
    DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
  INSERT INTO texts VALUES
    (1, 'ünïcødé 😀 𝄞 日本語', 'pad', 'trailing spaces   ', 'back\\slash \'quote\' "dq" \n newline \r cr \t tab \Z ctrlz \0 nul',
     X'00FF7F80', X'000102', NULL, NULL, '{"a": [1, 2.50, null], "b": "x\\"y"}', 'b c', 'x,z'),
    (2, '', '', '', '', X'00000000', X'', X'', X'', '[]', '', ''),
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (4, 'semi;colon -- not a comment /* nor this */ # nor this ;; DELIMITER', 'a ', ' ', REPEAT('long ', 10000),
     X'61626364', X'FFFE', X'5C27220D0A1A00', X'00', 'null', 'a', 'x,y,z');
  UPDATE texts SET vb = (SELECT UNHEX(GROUP_CONCAT(LPAD(HEX(seq), 2, '0') ORDER BY seq SEPARATOR '')) FROM seq_0_to_255),
    bl = (SELECT UNHEX(GROUP_CONCAT(LPAD(HEX(255 - seq), 2, '0') ORDER BY seq SEPARATOR '')) FROM seq_0_to_255),
    lb = (SELECT UNHEX(REPEAT(GROUP_CONCAT(LPAD(HEX(seq), 2, '0') ORDER BY seq SEPARATOR ''), 300)) FROM seq_0_to_255)
    WHERE id = 3;
  CREATE TABLE times (id INT PRIMARY KEY, d DATE, dt DATETIME(6), ts TIMESTAMP NULL DEFAULT NULL, tm TIME(6), tm0 TIME);
  INSERT INTO times VALUES
    (1, '1000-01-01', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01', '-838:59:59.000000', '838:59:59'),
    (2, '9999-12-31', '9999-12-31 23:59:59.999999', '2038-01-19 03:14:07', '123:45:59.5', '-00:00:01'),
    (3, '0000-00-00', '0000-00-00 00:00:00', NULL, '00:00:00', NULL),
    (4, '2024-02-29', '2024-02-29 12:34:56.123456', '2024-02-29 12:34:56', '-25:00:00.000001', '24:00:00');
  CREATE TABLE `we``ird tab le` (`col ``1`` x` INT PRIMARY KEY AUTO_INCREMENT, `the value` VARCHAR(20),
    twice INT AS (`col ``1`` x` * 2) VIRTUAL, stored_len INT AS (CHAR_LENGTH(`the value`)) STORED,
    hidden INT INVISIBLE DEFAULT 7) AUTO_INCREMENT=1000;
  INSERT INTO `we``ird tab le` (`the value`) VALUES ('one'), ('two'), (NULL);
  INSERT INTO `we``ird tab le` (`col ``1`` x`, `the value`, hidden) VALUES (5000, 'five thousand', 8);
  DELETE FROM `we``ird tab le` WHERE `col ``1`` x` = 5000;
  CREATE TABLE parent (id INT PRIMARY KEY) ENGINE=InnoDB;
  CREATE TABLE child (id INT PRIMARY KEY, pid INT, CONSTRAINT fk_child FOREIGN KEY (pid) REFERENCES parent (id)
    ON DELETE CASCADE) ENGINE=InnoDB;
  INSERT INTO parent SELECT seq FROM seq_1_to_50;
  INSERT INTO child SELECT seq, (seq % 50) + 1 FROM seq_1_to_200;
  CREATE TABLE big (id BIGINT PRIMARY KEY AUTO_INCREMENT, payload VARCHAR(400));
  INSERT INTO big (payload) SELECT REPEAT(MD5(seq), 10) FROM seq_1_to_20000;
  CREATE TABLE empty_t (x INT);
  CREATE TABLE audit (n INT);
  CREATE VIEW v_base AS SELECT id, t FROM texts WHERE id < 3;
  CREATE VIEW `a view on a view` AS SELECT COUNT(*) AS c FROM v_base;
  DELIMITER ;;
  CREATE PROCEDURE add_parent(IN n INT)
  BEGIN
    INSERT INTO parent VALUES (n); -- a comment; with a semicolon
    SELECT 'done;' AS s;
  END;;
  CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC
  BEGIN
    RETURN x * 2;
  END;;
  CREATE TRIGGER child_audit AFTER INSERT ON child FOR EACH ROW
  BEGIN
    INSERT INTO audit VALUES (NEW.id);
  END;;
  DELIMITER ;
  CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM audit;
  """#

/// Facts about a database that a faithful restore must reproduce.
func myShape(_ db: MyScratch) throws -> String {
  try db.sql(
    """
    SELECT CONCAT('tbl ', TABLE_NAME, ' ', TABLE_TYPE, ' ', IFNULL(AUTO_INCREMENT, '-')) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()
    UNION ALL SELECT CONCAT('col ', TABLE_NAME, '.', COLUMN_NAME, ' ', COLUMN_TYPE, ' ', EXTRA, ' ', IFNULL(GENERATION_EXPRESSION, '')) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()
    UNION ALL SELECT CONCAT('fk ', CONSTRAINT_NAME, ' ', TABLE_NAME, ' ', REFERENCED_TABLE_NAME, ' ', DELETE_RULE) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()
    UNION ALL SELECT CONCAT('rtn ', ROUTINE_TYPE, ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()
    UNION ALL SELECT CONCAT('trg ', TRIGGER_NAME, ' ', EVENT_OBJECT_TABLE) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()
    UNION ALL SELECT CONCAT('evt ', EVENT_NAME, ' ', STATUS) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()
    UNION ALL SELECT CONCAT('view ', c) FROM `a view on a view`
    UNION ALL SELECT CONCAT('fn ', twice(21))
    UNION ALL SELECT CONCAT('hidden ', SUM(hidden)) FROM `we``ird tab le`
    UNION ALL SELECT CONCAT('md5 ', MD5(lb), ' ', MD5(vb), ' ', MD5(bl)) FROM texts WHERE id = 3
    UNION ALL SELECT CONCAT('num ', id, ' ', IFNULL(HEX(bits), '-'), ' ', IFNULL(d, '-'), ' ', IFNULL(f, '-'), ' ', IFNULL(db, '-'), ' ', IFNULL(ubi, '-')) FROM nums
    UNION ALL SELECT CONCAT('time ', id, ' ', IFNULL(dt, '-'), ' ', IFNULL(ts, '-'), ' ', IFNULL(tm, '-'), ' ', IFNULL(tm0, '-')) FROM times
    UNION ALL SELECT CONCAT('text ', id, ' ', IFNULL(HEX(t), '-'), ' ', IFNULL(HEX(tx), '-'), ' ', IFNULL(HEX(bin), '-'), ' ', IFNULL(e, '-'), ' ', IFNULL(s, '-'), ' ', IFNULL(j, '-')) FROM texts
    ORDER BY 1
    """)
}

@Suite(.serialized) struct MariaDBEngineTests {
  @Test func roundTripAndInterop() throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("src")
    try source.sql(myFidelitySQL)

    let probe = try source.engine.probe()
    #expect(probe.engine == .mysql)
    #expect(probe.serverVersion.contains("MariaDB"))
    #expect(probe.tables.contains("we`ird tab le"))
    #expect(!probe.tables.contains("v_base"))

    let dumped = try myDump(source.url)
    #expect(dumped.sink.parts.first?.kind == .schema)
    #expect(dumped.sink.parts.last?.kind == .postData)
    #expect(
      Set(dumped.tables) == [
        "audit", "big", "child", "empty_t", "nums", "parent", "texts", "times", "we`ird tab le",
      ])
    #expect(dumped.tableParts.first { $0.table == "big" }?.rows == 20000)
    #expect(dumped.text.contains(#"-- ai-shell: {"type":"table","name":"nums","table":"nums"}"#))
    #expect(dumped.text.contains("DELIMITER ;;"))
    #expect(!dumped.text.contains("DEFINER="))
    let position = try #require(dumped.result.replicationPosition)
    #expect(position.binlogFile.hasPrefix("mysql-bin."))
    #expect(position.binlogPosition > 0)
    for (type, name) in [
      ("view", "v_base"), ("view", "a view on a view"), ("procedure", "add_parent"), ("function", "twice"),
      ("trigger", "child_audit"), ("event", "nightly"),
    ] {
      #expect(dumped.result.objects.contains { $0.type == type && $0.name == name }, "\(type) \(name)")
    }
    expectStatsMatch(try source.engine.tableStats(dumped.tables), dumped)

    // restore through the engine into a database that does not exist yet
    let target = server.unusedDatabase("dst")
    let report = try dumped.restoreIntoNewDatabase(target.engine, exists: target.exists)
    #expect(report.tables.first { $0.name == "big" }?.rows == 20000)
    expectStatsMatch(try target.engine.tableStats(dumped.tables), dumped)
    #expect(try myShape(target) == myShape(source))
    // the trigger was created after the data (it did not fire on restored rows) and works
    #expect(try target.sql("SELECT COUNT(*) FROM audit") == "0")
    try target.sql("INSERT INTO parent VALUES (1000); INSERT INTO child VALUES (1000, 1000)")
    #expect(try target.sql("SELECT COUNT(*) FROM audit") == "1")
    // AUTO_INCREMENT carried over
    try target.sql("INSERT INTO `we``ird tab le` (`the value`) VALUES ('next')")
    #expect(try target.sql("SELECT MAX(`col ``1`` x`) FROM `we``ird tab le`") == "5001")

    // interop: the concatenated file restores with the mariadb client, also through zstd
    let viaClient = try server.freshDatabase("cli")
    let dir = TempDir()
    let file = dir.file("dump.sql.zst")
    let raw = dir.file("dump.sql")
    try Data(dumped.sink.allBytes).write(to: URL(fileURLWithPath: raw))
    #expect(try shell("zstd -q -o '\(file)' '\(raw)'").status == 0)
    let r = try shell(
      "zstd -dc '\(file)' | mariadb --no-defaults --protocol=TCP -h \(server.host) -P \(server.port) -u \(server.user) \(viaClient.name)",
      environment: ["MYSQL_PWD": server.password])
    #expect(r.status == 0, "\(r.stderr)")
    expectStatsMatch(try viaClient.engine.tableStats(dumped.tables), dumped)
    #expect(try myShape(viaClient) == myShape(source))
    #expect(try myChecksums(viaClient) == myChecksums(source))
  }

  /// The fidelity database through json and csv (dump, restore sequentially and with --jobs 3),
  /// and the same table contents whatever --jobs the dump used.
  @Test(arguments: [DumpFormat.json, .csv, .sql])
  func fidelityPerFormatAndJobs(format: DumpFormat) throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("src")
    try source.sql(myFidelitySQL)
    let dumped = try myDump(source.url, format: format)
    let parallel = try myDump(source.url, format: format, jobs: 4)
    #expect(parallel.sink.parts.map(\.table) == dumped.sink.parts.map(\.table))
    for (a, b) in zip(dumped.tableParts, parallel.tableParts) {
      let same = a.bytes == b.bytes
      #expect(same, "table part \(a.table!) differs between --jobs 1 and --jobs 4")
      #expect(a.contentChecksum == b.contentChecksum)
    }
    #expect(dumped.tableParts.first { $0.table == "big" }?.rows == 20000)
    expectStatsMatch(try source.engine.tableStats(dumped.tables), dumped)
    switch format {
    case .json:
      #expect(dumped.sink.parts[0].text.hasPrefix(#"{"$backup":{"engine":"mysql","format":"json""#))
      for line in dumped.text.split(separator: "\n") {
        #expect(
          (try? JSONSerialization.jsonObject(with: Data(line.utf8), options: [.fragmentsAllowed])) != nil,
          "not JSON: \(line.prefix(200))")
      }
      let nums = try #require(dumped.tableParts.first { $0.table == "nums" }).text
      #expect(nums.contains(#""ubi":18446744073709551615"#))
      #expect(nums.contains(#""bits":8191"#))
    case .csv:
      let dir = TempDir()
      try Data(dumped.sink.allBytes).write(to: URL(fileURLWithPath: dir.file("b.tar")))
      let r = try shell("cd '\(dir.path)' && tar -xf b.tar && ls")
      #expect(r.status == 0)
      let files = r.stdout
      for f in ["schema.sql", "post-data.sql", "nums.csv", "we`ird tab le.csv"] {
        #expect(files.contains(f), "\(f) in \(files)")
      }
      let texts = try String(contentsOfFile: dir.file("texts.csv"), encoding: .utf8)
      #expect(texts.hasPrefix("id,t,c,tx,lt,bin,vb,bl,lb,j,e,s\n"))
      #expect(texts.contains(#"1,"ünïcødé 😀 𝄞 日本語","pad","trailing spaces   ","#))
      #expect(texts.contains(",X'00FF7F80',"))
    case .sql:
      break
    }
    for jobs in [1, 3] {
      let target = server.unusedDatabase("dst\(jobs)")
      let report = try target.engine.restore(dumped.request(jobs: jobs), parts: dumped.opener)
      #expect(report.statementsFailed == 0)
      #expect(report.tables.map(\.name) == dumped.tables)
      #expect(report.tables.first { $0.name == "big" }?.rows == 20000)
      expectStatsMatch(try target.engine.tableStats(dumped.tables), dumped)
      #expect(try myShape(target) == myShape(source))
      #expect(try myChecksums(target) == myChecksums(source), "\(format) --jobs \(jobs)")
      #expect(try target.sql("SELECT COUNT(*) FROM audit") == "0")
      try target.sql("INSERT INTO `we``ird tab le` (`the value`) VALUES ('next')")
      #expect(try target.sql("SELECT MAX(`col ``1`` x`) FROM `we``ird tab le`") == "5001")
    }
  }

  /// A restore that creates its target gives it the source database's default character set
  /// and collation (the manifest's database.creation), or utf8mb4 where the server refuses
  /// them, and the notes say which.
  @Test func aCreatedTargetHasTheSourcesCharacterSet() throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("cs")
    try source.sql(
      """
      ALTER DATABASE \(source.name) CHARACTER SET latin1 COLLATE latin1_german1_ci;
      CREATE TABLE t (id int PRIMARY KEY, s varchar(10) CHARACTER SET utf8mb4);
      INSERT INTO t VALUES (1, 'ä😀');
      """)
    let dumped = try myDump(source.url)
    #expect(
      dumped.result.creation
        == Manifest.DatabaseCreation(
          encoding: "latin1", lcCollate: "latin1_german1_ci", lcCtype: "latin1_german1_ci"))
    func defaults(_ db: String) throws -> String {
      try server.run(
        "information_schema",
        "SELECT CONCAT(DEFAULT_CHARACTER_SET_NAME, ' ', DEFAULT_COLLATION_NAME) FROM SCHEMATA WHERE SCHEMA_NAME = '\(db)'"
      )
    }
    let target = server.unusedDatabase("cs")
    let check = try target.engine.checkRestore(dumped.request())
    #expect(
      check.contains { $0.contains("character set latin1 and collation latin1_german1_ci") }, "\(check)")
    let report = try dumped.restoreIntoNewDatabase(target.engine, exists: target.exists)
    #expect(report.notes.contains { $0.contains("character set latin1 and collation latin1_german1_ci") })
    #expect(try defaults(target.name) == "latin1 latin1_german1_ci")
    #expect(try target.sql("SELECT s FROM t") == "ä😀")
    // a collation this server does not have: utf8mb4, and the note says why
    var request = dumped.request()
    request.creation = Manifest.DatabaseCreation(
      encoding: "latin1", lcCollate: "no_such_collation", lcCtype: "no_such_collation")
    let other = server.unusedDatabase("cs")
    let refused = try other.engine.restore(request, parts: dumped.opener)
    #expect(refused.notes.contains { $0.contains("with character set utf8mb4: the server refused") })
    #expect(try defaults(other.name).hasPrefix("utf8mb4 "))
    #expect(try other.sql("SELECT s FROM t") == "ä😀")
  }

  @Test func restoreRefusesExistingTablesAndDropsOnlyTheBackups() throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("src")
    try source.sql(
      "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'a'), (2, NULL); CREATE TABLE u (x INT); INSERT INTO u VALUES (7); CREATE VIEW vv AS SELECT * FROM u"
    )
    let dumped = try myDump(source.url)
    let target = try server.freshDatabase("dst")
    try target.sql("CREATE TABLE keep_me (y INT); INSERT INTO keep_me VALUES (1)")
    _ = try dumped.restoreTwiceIsRefused(target.engine)
    try target.sql("INSERT INTO t VALUES (3, 'b')")
    let report = try target.engine.restore(dumped.request(dropExisting: true), parts: dumped.opener)
    #expect(report.notes.contains { $0.contains("dropped table \"t\"") })
    #expect(report.notes.contains { $0.contains("dropped view \"vv\"") })
    #expect(try target.sql("SELECT COUNT(*) FROM t") == "2")
    #expect(try target.sql("SELECT COUNT(*) FROM keep_me") == "1")
    expectStatsMatch(try target.engine.tableStats(dumped.tables), dumped)

    // --tables: only that table
    let partial = try server.freshDatabase("part")
    let r = try partial.engine.restore(dumped.request(tables: ["u"]), parts: dumped.opener)
    #expect(r.tables.map(\.name) == ["u"])
    #expect(
      try partial.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()") == "1"
    )
    #expect(try partial.sql("SELECT x FROM u") == "7")
    #expect(throws: BackupError.self) { try partial.engine.checkRestore(dumped.request(tables: ["nope"])) }

    // --tables at backup time
    let only = try myDump(source.url, tables: ["u"])
    #expect(only.tables == ["u"])
    #expect(!only.result.objects.contains { $0.type == "view" })
    do {
      _ = try myDump(source.url, tables: ["nope"])
      Issue.record("an unknown table must fail")
    } catch let e as BackupError {
      #expect(e.status == .notFound)
    }
  }

  @Test func corruptPartLeavesNothingBehind() throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("src")
    try source.sql(
      "CREATE TABLE a (id INT); INSERT INTO a SELECT seq FROM seq_1_to_5000; CREATE TABLE b (id INT PRIMARY KEY); INSERT INTO b VALUES (1); CREATE VIEW vb AS SELECT * FROM b"
    )
    let dumped = try myDump(source.url)
    for failPart in [1, dumped.sink.parts.count - 1] {
      let target = try server.freshDatabase("dst")
      try target.sql("CREATE TABLE keep_me (y INT)")
      let error = dumped.restoreError(into: target.engine, failingPart: failPart)
      #expect(
        (error as? BackupError)?.status == .corrupt, "a corrupt part must fail the restore: \(error as Any)")
      #expect(
        try target.sql(
          "SELECT GROUP_CONCAT(TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
          == "keep_me")
      // a restore that created its database removes it again
      let fresh = server.unusedDatabase("new")
      #expect(dumped.restoreError(into: fresh.engine, failingPart: failPart) != nil)
      #expect(try !fresh.exists())
    }
  }

  /// Rows are committed every ~16 MiB: a part found corrupt at its end, after such commits,
  /// still leaves no table behind (sequential and parallel restores).
  @Test func corruptPartAfterIntermediateCommitsLeavesNothing() throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("src")
    try source.sql(
      "CREATE TABLE small (x INT); INSERT INTO small VALUES (1); CREATE TABLE wide (id INT PRIMARY KEY, pad VARCHAR(1000)); INSERT INTO wide SELECT seq, REPEAT(CHAR(65 + seq % 26), 1000) FROM seq_1_to_24000"
    )
    let dumped = try myDump(source.url)
    let index = try #require(dumped.sink.parts.firstIndex { $0.table == "wide" })
    #expect(dumped.sink.parts[index].bytes.count > 20 << 20)
    for jobs in [1, 2] {
      let target = try server.freshDatabase("dst")
      let error = dumped.restoreError(
        into: target.engine, failingPart: index, after: dumped.sink.parts[index].bytes.count - 1000,
        jobs: jobs)
      #expect(
        (error as? BackupError)?.status == .corrupt, "a corrupt part must fail the restore: \(error as Any)")
      #expect(
        try target.sql("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
          == "0",
        "--jobs \(jobs)")
    }
  }

  @Test func connectionErrorsAreClearAndSecretFree() throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let secret = "Wr0ng-S3cret-pw"
    let faults = expectConnectionFaults(
      wrongPassword: MariaDBEngine(url: server.url(db: "mysql", password: secret)),
      missingDatabase: (MariaDBEngine(url: server.url(db: "no_such_db_here")), "no_such_db_here"),
      noServer: MariaDBEngine(url: "mysql://\(server.user):\(secret)@127.0.0.1:1/x"),
      secrets: [secret, server.password])
    #expect(faults.wrongPassword?.description.contains("\(server.host):\(server.port)") == true)
    #expect(faults.wrongPassword?.description.contains("Access denied") == true)
    #expect(faults.noServer?.description.contains("127.0.0.1:1") == true)
  }

  @Test func tableWithoutSelectPrivilegeIsNamed() throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("priv")
    try source.sql(
      "CREATE TABLE open_t (id INT); INSERT INTO open_t VALUES (1); CREATE TABLE secret_t (id INT)")
    let user = "lim_\(UUID().uuidString.prefix(6).lowercased())"
    try server.client(
      nil,
      """
      CREATE USER '\(user)'@'%' IDENTIFIED BY 'lim-pass';
      GRANT RELOAD, REPLICATION CLIENT ON *.* TO '\(user)'@'%';
      GRANT SELECT, SHOW VIEW ON `\(source.name)`.`open_t` TO '\(user)'@'%';
      GRANT INSERT ON `\(source.name)`.`secret_t` TO '\(user)'@'%';
      """)
    defer { _ = try? server.client(nil, "DROP USER '\(user)'@'%'") }
    let limited = "mysql://\(user):lim-pass@\(server.host):\(server.port)/\(source.name)"
    do {
      _ = try myDump(limited)
      Issue.record("a table the user cannot read must fail the dump")
    } catch let e as BackupError {
      #expect(e.status == .database)
      #expect(e.message.contains("secret_t"), "\(e)")
      #expect(!e.description.contains("lim-pass"))
    }
  }

  /// The server side ends the backup's connection mid-table: a clear error, nothing complete.
  @Test(arguments: [1, 3]) func connectionKilledMidBackup(jobs: Int) throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("kill")
    try source.sql(
      "CREATE TABLE a (id INT); INSERT INTO a VALUES (1); CREATE TABLE big (id INT, pad VARCHAR(300)); INSERT INTO big SELECT seq, REPEAT('k', 300) FROM seq_1_to_300000; CREATE TABLE z (id INT)"
    )
    let dir = TempDir()
    let service = BackupService(backupDirectory: dir.path)
    let name = source.name
    let killer = BackgroundJob { () -> Bool in
      for _ in 0..<2000 {
        let ids =
          (try? server.client(
            nil,
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = '\(name)' AND INFO LIKE 'SELECT%FROM `big`%'"
          )) ?? ""
        let found = ids.split(separator: "\n").filter { !$0.isEmpty }
        if !found.isEmpty {
          for id in found { _ = try? server.client(nil, "KILL CONNECTION \(id)") }
          return true
        }
        Thread.sleep(forTimeInterval: 0.005)
      }
      return false
    }
    var options = BackupService.CreateOptions(database: source.url, compression: .gzip, lockTimeoutSeconds: 5)
    options.jobs = jobs
    do {
      _ = try service.create(options)
      Issue.record("a backup whose connection died must fail")
    } catch let e as BackupError {
      #expect(e.status == .database)
      #expect(e.message.contains("big"), "\(e)")
    }
    #expect(try killer.wait(seconds: 120)?.get() == true, "the dump's query was seen and killed")
    #expect(try service.list().allSatisfy { $0.status != .complete })
    let manifests = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter {
      $0.hasSuffix(".manifest.json")
    }
    #expect(manifests.isEmpty)
  }

  /// gzip and bzip2 backup files restore with the standard tools alone.
  @Test(arguments: [CompressionAlgorithm.gzip, .bzip2])
  func standardToolsRestoreCompressedFiles(compression: CompressionAlgorithm) throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("std")
    try source.sql(myFidelitySQL)
    let dir = TempDir()
    let service = BackupService(backupDirectory: dir.path)
    let summary = try service.create(
      .init(database: source.url, compression: compression, lockTimeoutSeconds: 5))
    let file = try #require(summary.file)
    let target = try server.freshDatabase("cli")
    let tool = compression == .gzip ? "gzip" : "bzip2"
    let r = try shell(
      "\(tool) -dc '\(file)' | mariadb --no-defaults --protocol=TCP -h \(server.host) -P \(server.port) -u \(server.user) \(target.name)",
      environment: ["MYSQL_PWD": server.password])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(try myShape(target) == myShape(source))
  }

  @Test(arguments: [DumpFormat.sql, .json, .csv]) func sequencesKeepTheirValue(format: DumpFormat) throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("seq")
    try source.sql(
      """
      CREATE SEQUENCE `order seq` START WITH 100 INCREMENT BY 5 NOCACHE;
      CREATE SEQUENCE cached_seq START WITH 1 CACHE 10;
      CREATE TABLE orders (id INT PRIMARY KEY DEFAULT NEXTVAL(`order seq`), v INT);
      INSERT INTO orders (v) VALUES (1), (2), (3);
      SELECT NEXTVAL(cached_seq);
      """)
    let dumped = try myDump(source.url, format: format)
    #expect(dumped.result.objects.contains { $0.type == "sequence" && $0.name == "order seq" })
    let target = try server.freshDatabase("dst")
    _ = try target.engine.restore(dumped.request(dropExisting: true), parts: dumped.opener)
    #expect(try target.sql("SELECT GROUP_CONCAT(id ORDER BY id) FROM orders") == "100,105,110")
    try target.sql("INSERT INTO orders (v) VALUES (4)")
    #expect(try target.sql("SELECT MAX(id) FROM orders") == "115")
    // a cached sequence continues after its cache, as after a server restart
    #expect(try Int(target.sql("SELECT NEXTVAL(cached_seq)"))! > 1)
    // restoring again over it: --drop-existing drops the sequences too
    _ = try target.engine.restore(dumped.request(dropExisting: true), parts: dumped.opener)
    #expect(try target.sql("SELECT NEXTVAL(`order seq`)") == "115")
  }

  /// DEFINER= clauses are removed: a user without SUPER / SET USER restores views, routines,
  /// triggers and events defined by someone else, and becomes their definer.
  @Test func definersAreRemovedSoAnotherUserCanRestore() throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("def")
    let other = "own_\(UUID().uuidString.prefix(6).lowercased())"
    try server.client(nil, "CREATE USER '\(other)'@'%' IDENTIFIED BY 'x'; GRANT ALL ON *.* TO '\(other)'@'%'")
    defer { _ = try? server.client(nil, "DROP USER '\(other)'@'%'") }
    try source.sql(
      """
      CREATE TABLE t (id INT); CREATE TABLE log (n INT);
      CREATE DEFINER = '\(other)'@'%' SQL SECURITY DEFINER VIEW v AS SELECT id FROM t;
      CREATE DEFINER = '\(other)'@'%' PROCEDURE p() SELECT 1;
      CREATE DEFINER = '\(other)'@'%' TRIGGER tr AFTER INSERT ON t FOR EACH ROW INSERT INTO log VALUES (NEW.id);
      CREATE DEFINER = '\(other)'@'%' EVENT ev ON SCHEDULE EVERY 1 DAY DISABLE DO DELETE FROM log;
      """)
    let dumped = try myDump(source.url)
    #expect(!dumped.text.contains("DEFINER="))
    #expect(!dumped.text.contains(other))
    let target = try server.freshDatabase("defdst")
    let restorer = "rst_\(UUID().uuidString.prefix(6).lowercased())"
    try server.client(
      nil,
      "CREATE USER '\(restorer)'@'%' IDENTIFIED BY 'r-pass'; GRANT ALL ON `\(target.name)`.* TO '\(restorer)'@'%'"
    )
    defer { _ = try? server.client(nil, "DROP USER '\(restorer)'@'%'") }
    let engine = MariaDBEngine(url: "mysql://\(restorer):r-pass@\(server.host):\(server.port)/\(target.name)")
    // with binary logging on, MariaDB lets a user without SUPER create triggers only under
    // log_bin_trust_function_creators: the error says so
    do {
      _ = try engine.restore(dumped.request(), parts: dumped.opener)
      Issue.record("a trigger needs SUPER or log_bin_trust_function_creators while the binlog is on")
    } catch let e as BackupError {
      #expect(e.hint?.contains("log_bin_trust_function_creators") == true, "\(e)")
    }
    let trust = try server.client(nil, "SELECT @@GLOBAL.log_bin_trust_function_creators")
    try server.client(nil, "SET GLOBAL log_bin_trust_function_creators = 1")
    defer { _ = try? server.client(nil, "SET GLOBAL log_bin_trust_function_creators = \(trust)") }
    let report = try engine.restore(dumped.request(), parts: dumped.opener)
    #expect(report.statementsFailed == 0)
    let definers = try target.sql(
      """
      SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()
      UNION SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()
      UNION SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()
      UNION SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE()
      """)
    #expect(definers == "\(restorer)@%")
    try target.sql("INSERT INTO t VALUES (5)")
    #expect(try target.sql("SELECT n FROM log") == "5")
  }

  @Test func locatorAndRedaction() throws {
    let l = try DatabaseLocator("mysql://me:s3cr%40t@db.example:3307/app?ssl=true")
    #expect(l.engineKind == .mysql)
    #expect(l.location == "mysql://me@db.example:3307/app?ssl=true")
    #expect(try DatabaseLocator("mariadb://h/db").engineKind == .mysql)
    let u = try MyURL("mariadb://me:s3cr%40t@db.example:3307/app?defaults-file=/x/my.cnf")
    #expect(u.password == "s3cr@t")
    #expect(u.database == "app")
    #expect(u.port == 3307)
    #expect(u.options["defaults-file"] == "/x/my.cnf")
    #expect(throws: BackupError.self) { _ = try MyURL("mysql://h/db?bogus=1") }
    let other = try MariaDBEngine.url("mysql://me:p%40w%2Fx@h:1/app?ssl=1", replacingDatabase: "scratch")
    #expect(try MyURL(other).database == "scratch")
    #expect(try MyURL(other).password == "p@w/x")
    #expect(try MyURL(other).options["ssl"] == "1")
    #expect(MariaDBEngine.redact(other) == "mysql://me@h:1/scratch?ssl=1")
  }

  @Test func passwordFromOptionFileAndEnvironment() throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let dir = TempDir()
    let cnf = dir.file("my.cnf")
    try "[client]\npassword=\(server.password)\n".write(toFile: cnf, atomically: true, encoding: .utf8)
    let viaFile = "mysql://\(server.user)@\(server.host):\(server.port)/mysql?defaults-file=\(cnf)"
    #expect(try MariaDBEngine(url: viaFile).probe().engine == .mysql)
    // MYSQL_PWD when the URL has no password
    setenv("MYSQL_PWD", server.password, 1)
    defer { unsetenv("MYSQL_PWD") }
    #expect(
      try MariaDBEngine(url: "mysql://\(server.user)@\(server.host):\(server.port)/mysql").probe().engine
        == .mysql)
  }

  @Test(arguments: [1, 4]) func snapshotHidesConcurrentTransfers(jobs: Int) throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("src")
    try source.sql(
      """
      CREATE TABLE checking (id INT PRIMARY KEY, bal BIGINT NOT NULL) ENGINE=InnoDB;
      CREATE TABLE savings (id INT PRIMARY KEY, bal BIGINT NOT NULL) ENGINE=InnoDB;
      INSERT INTO checking SELECT seq, 1000 FROM seq_1_to_1000;
      CREATE TABLE filler (id INT, pad VARCHAR(300)) ENGINE=InnoDB;
      INSERT INTO filler SELECT seq, REPEAT('x', 200) FROM seq_1_to_100000;
      INSERT INTO savings SELECT seq, 1000 FROM seq_1_to_1000;
      """)
    let total = "2000000"
    let writerURL = source.url
    let writer = ConcurrentTransfers(connect: { try MyConnection(try MyURL(writerURL)) }) { db, i in
      _ = try? db.exec("START TRANSACTION")
      _ = try? db.exec("UPDATE checking SET bal = bal - 5 WHERE id = \(i % 1000 + 1)")
      _ = try? db.exec("UPDATE savings SET bal = bal + 5 WHERE id = \((i * 7) % 1000 + 1)")
      _ = try? db.exec("COMMIT")
    }
    let dumped = try writer.during { try myDump(source.url, jobs: jobs) }
    #expect(
      try source.sql("SELECT (SELECT SUM(bal) FROM checking) + (SELECT SUM(bal) FROM savings)") == total)
    let target = try server.freshDatabase("dst")
    _ = try target.engine.restore(dumped.request(jobs: jobs), parts: dumped.opener)
    #expect(
      try target.sql("SELECT (SELECT SUM(bal) FROM checking) + (SELECT SUM(bal) FROM savings)") == total)
    expectStatsMatch(try target.engine.tableStats(dumped.tables), dumped)
  }

  @Test func myisamTablesWarnAndStayConsistent() throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("src")
    try source.sql(
      "CREATE TABLE m (id INT PRIMARY KEY, v INT) ENGINE=MyISAM; INSERT INTO m SELECT seq, seq FROM seq_1_to_1000; CREATE TABLE i (id INT) ENGINE=InnoDB; INSERT INTO i VALUES (1)"
    )
    let dumped = try myDump(source.url)
    #expect(
      dumped.result.warnings.contains { $0.contains("\"m\" (MyISAM)") && $0.contains("not transactional") })
    let target = try server.freshDatabase("dst")
    _ = try target.engine.restore(dumped.request(), parts: dumped.opener)
    expectStatsMatch(try target.engine.tableStats(dumped.tables), dumped)
  }

  @Test func verifyTestThroughTheService() throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("src")
    try source.sql(
      "CREATE TABLE t (id INT PRIMARY KEY AUTO_INCREMENT, v TEXT); INSERT INTO t (v) SELECT MD5(seq) FROM seq_1_to_1000"
    )
    let dir = TempDir()
    let service = BackupService(backupDirectory: dir.path)
    service.testRestoreServer = url
    let summary = try service.create(
      .init(
        database: source.url, name: nil, compression: .zstd, level: nil, format: .sql, tables: nil,
        verify: true, lockTimeoutSeconds: 5))
    let manifest = try String(contentsOfFile: dir.file("\(summary.id).manifest.json"), encoding: .utf8)
    #expect(!manifest.contains(server.password))
    #expect(manifest.contains("\"engine\" : \"mysql\"") || manifest.contains("\"engine\":\"mysql\""))
    #expect(manifest.contains("binlogFile"))
    let report = try service.verify(summary.id, deep: true, test: true)
    #expect(report.ok, "\(report.checks)")
    #expect(
      try server.client(
        nil, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'ai_shell_verify_%'")
        == "0")
    // restore through the service into a new database
    let target = server.unusedDatabase("svc")
    _ = try service.restore(summary.id, options: .init(target: target.url))
    #expect(try target.sql("SELECT COUNT(*) FROM t") == "1000")
  }
}

@Suite(.serialized) struct MariaDBImportTests {
  /// A real mariadb-dump script (gzip, bzip2 or zstd) becomes a standard backup that our tool
  /// restores, table by table too, and `verify --test` passes on it.
  @Test(arguments: [CompressionAlgorithm.gzip, .bzip2, .zstd])
  func importsMariadbDump(compression: CompressionAlgorithm) throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("dmp")
    try source.sql(myFidelitySQL)
    try source.sql("CREATE SEQUENCE s1 START WITH 10 NOCACHE; SELECT NEXTVAL(s1); SELECT NEXTVAL(s1);")
    let dir = TempDir()
    let tool = ["gzip": "gzip", "bzip2": "bzip2", "zstd": "zstd -q"][compression.rawValue]!
    let file = dir.file("dump.sql" + compression.fileExtension)
    let r = try shell(
      "mariadb-dump --no-defaults --protocol=TCP -h \(server.host) -P \(server.port) -u \(server.user) --single-transaction --routines --events --triggers \(source.name) | \(tool) > '\(file)'",
      environment: ["MYSQL_PWD": server.password])
    #expect(r.status == 0, "\(r.stderr)")
    let service = BackupService(backupDirectory: dir.file("backups"))
    service.testRestoreServer = url
    let outcome = try service.importBackup(.init(source: file, verify: true, database: source.url))
    let m = try service.manifest(for: outcome.backup.id)
    #expect(m.database.engine == .mysql)
    #expect(m.tableParts.first { $0.table == "big" }?.rows == 20000)
    #expect(m.tableParts.first { $0.table == "empty_t" }?.rows == 0)
    #expect(m.tableParts.allSatisfy { $0.contentChecksum == nil })
    for (type, name) in [
      ("view", "a view on a view"), ("procedure", "add_parent"), ("function", "twice"),
      ("trigger", "child_audit"),
      ("event", "nightly"), ("sequence", "s1"), ("table", "we`ird tab le"),
    ] {
      #expect(m.objects.contains { $0.type == type && $0.name == name }, "\(type) \(name)")
    }
    let target = server.unusedDatabase("imp")
    _ = try service.restore(outcome.backup.id, options: .init(target: target.url))
    #expect(try myShape(target) == myShape(source))
    #expect(try target.sql("SELECT NEXTVAL(s1)") == "12")
    // the same rows as the mariadb client restores from that file; and as the source but for
    // its FLOAT column: mariadb-dump writes FLOATs with 6 significant digits (3.40282e38 for the
    // largest), which our backups do not (see docs/FORMAT.md)
    let viaClient = try server.freshDatabase("impcli")
    let loaded = try shell(
      "\(tool) -dc '\(file)' | mariadb --no-defaults --protocol=TCP -h \(server.host) -P \(server.port) -u \(server.user) \(viaClient.name)",
      environment: ["MYSQL_PWD": server.password])
    #expect(loaded.status == 0, "\(loaded.stderr)")
    let restored = try target.engine.tableStats(m.tableParts.map { $0.table! })
    expectStatsMatch(restored, try myDump(viaClient.url))
    let fromSource = try myDump(source.url)
    #expect(fromSource.mismatches(restored).allSatisfy { $0.hasPrefix("checksum of nums:") })
    #expect(try myChecksums(target, tables: ["nums"]) == myChecksums(viaClient, tables: ["nums"]))
    #expect(try myChecksums(target) != myChecksums(source), "mariadb-dump's FLOAT digits lose precision")
    // one table alone
    let one = server.unusedDatabase("one")
    _ = try service.restore(outcome.backup.id, options: .init(target: one.url, tables: ["child", "parent"]))
    #expect(try one.sql("SELECT COUNT(*) FROM child") == "200")
  }

  /// Dumps made with --insert-ignore, --replace or --skip-extended-insert import and restore too;
  /// a dump cut short is refused.
  @Test func importsOtherInsertStylesAndRefusesTruncatedDumps() throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("sty")
    try source.sql(
      "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO t SELECT seq, CONCAT('v', seq) FROM seq_1_to_300"
    )
    let dir = TempDir()
    let service = BackupService(backupDirectory: dir.file("backups"))
    for flag in ["--insert-ignore", "--replace", "--skip-extended-insert"] {
      let file = dir.file("dump\(flag).sql")
      let r = try shell(
        "mariadb-dump --no-defaults --protocol=TCP -h \(server.host) -P \(server.port) -u \(server.user) \(flag) \(source.name) > '\(file)'",
        environment: ["MYSQL_PWD": server.password])
      #expect(r.status == 0, "\(r.stderr)")
      let outcome = try service.importBackup(.init(source: file))
      #expect(try service.manifest(for: outcome.backup.id).tableParts.first?.rows == 300, "\(flag)")
      let target = server.unusedDatabase("sty")
      _ = try service.restore(outcome.backup.id, options: .init(target: target.url))
      #expect(try target.sql("SELECT COUNT(*), SUM(id) FROM t") == "300\t45150", "\(flag)")
    }
    let whole = try String(contentsOfFile: dir.file("dump--replace.sql"), encoding: .utf8)
    let cut = dir.file("cut.sql")
    try String(whole.prefix(whole.count * 2 / 3)).write(toFile: cut, atomically: true, encoding: .utf8)
    #expect(throws: BackupError.self) { _ = try service.importBackup(.init(source: cut)) }
  }
}
