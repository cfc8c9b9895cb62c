import Foundation
import TestSupport
import Testing

@Suite struct RoundTripTests {
  static let combinations: [(String, String)] = [
    ("sql", "zstd"), ("sql", "gzip"), ("sql", "bzip2"), ("sql", "none"),
    ("json", "zstd"), ("json", "gzip"), ("csv", "zstd"), ("csv", "bzip2"),
  ]

  @Test(arguments: combinations)
  func createVerifyRestoreGivesIdenticalDatabase(format: String, compression: String) throws {
    let cli = AIShellRunner()
    let db = cli.work.file("source.db")
    try makeSQLite(db, sampleSQL)
    let id = try cli.create(["-d", db, "--format", format, "-c", compression, "--verify"])
    #expect(id.hasPrefix("backup-"))

    let verify = try cli.run(["backup", "verify", id, "--test"])
    #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
    #expect(verify.stdout.contains("verified"))

    let target = cli.work.file("restored.db")
    let restore = try cli.run(["backup", "restore", id, "-d", target])
    #expect(restore.status == 0, "\(restore.stderr)")
    #expect(try snapshot(target) == snapshot(db))
  }

  @Test func createJSONHasTheDocumentedFields() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let r = try cli.run(["backup", "create", "-d", db, "--json", "-n", "nightly"])
    #expect(r.status == 0, "\(r.stderr)")
    let obj = try #require(r.json as? [String: Any])
    for key in [
      "id", "name", "database", "engine", "format", "compression", "file", "sizeBytes", "sha256", "tables",
      "createdAt", "durationSeconds",
    ] {
      #expect(obj[key] != nil, "missing \(key)")
    }
    #expect(obj["name"] as? String == "nightly")
    #expect(obj["compression"] as? String == "zstd")
    #expect(obj["format"] as? String == "sql")
    let file = try #require(obj["file"] as? String)
    #expect(file.hasPrefix("/") && file.hasSuffix(".sql.zst") && FileManager.default.fileExists(atPath: file))
    let tables = try #require(obj["tables"] as? [[String: Any]])
    let accounts = tables.first { $0["name"] as? String == "accounts" }
    #expect(accounts?["rows"] as? Int == 3)
    // the sha256 is the stored file's
    let sum = try shell("sha256sum '\(file)' | cut -d' ' -f1").stdout.trimmingCharacters(
      in: .whitespacesAndNewlines)
    #expect(obj["sha256"] as? String == sum)
  }

  @Test func standardToolsRestoreEveryCompression() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    for (compression, decoder) in [
      ("gzip", "gzip -dc"), ("bzip2", "bunzip2 -c"), ("zstd", "zstd -dc"), ("none", "cat"),
    ] {
      let r = try cli.run(["backup", "create", "-d", db, "-c", compression, "--json"])
      let file = try #require((r.json as? [String: Any])?["file"] as? String)
      let target = cli.work.file("via-\(compression).db")
      let piped = try shell("\(decoder) '\(file)' | sqlite3 '\(target)'")
      #expect(piped.status == 0, "\(piped.stderr)")
      #expect(try snapshot(target) == snapshot(db), "\(compression)")
    }
  }

  @Test func csvBackupIsATarOfCSVFiles() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let r = try cli.run(["backup", "create", "-d", db, "--format", "csv", "--json"])
    let file = try #require((r.json as? [String: Any])?["file"] as? String)
    #expect(file.hasSuffix(".tar.zst"))
    let out = cli.work.file("x")
    try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
    let untar = try shell("zstd -dc '\(file)' | tar -x -C '\(out)' && ls '\(out)'")
    #expect(untar.status == 0, "\(untar.stderr)")
    for name in ["schema.sql", "post-data.sql", "accounts.csv", "order items.csv", "kv.csv"] {
      #expect(untar.stdout.contains(name), "missing \(name) in \(untar.stdout)")
    }
    let accounts = try String(contentsOfFile: out + "/accounts.csv", encoding: .utf8)
    #expect(accounts.hasPrefix("id,owner,balance\n") || accounts.hasPrefix("\"id\",\"owner\",\"balance\"\n"))
    #expect(accounts.contains("\"alice\",500"))
  }

  @Test func jsonBackupIsNDJSON() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let r = try cli.run(["backup", "create", "-d", db, "--format", "json", "-c", "gzip", "--json"])
    let file = try #require((r.json as? [String: Any])?["file"] as? String)
    let text = try shell("gzip -dc '\(file)'").stdout
    var headers = 0
    for line in text.split(separator: "\n") {
      let obj = try #require(
        try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
      if obj["$table"] != nil { headers += 1 }
    }
    #expect(headers == 5)
    #expect(text.contains("\"$base64\""))
    #expect(text.contains("9223372036854775807"))
  }

  @Test func tablesFlagOnCreateAndRestore() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let missing = try cli.run(["backup", "create", "-d", db, "--tables", "accounts,nope"])
    #expect(missing.status == 2)
    #expect(missing.stderr.contains("\"nope\""))
    #expect(cli.backupFiles().isEmpty)

    let partial = try cli.create(["-d", db, "--tables", "kv", "--json"])
    _ = partial
    let full = try cli.create(["-d", db])
    let target = cli.work.file("one.db")
    let r = try cli.run(["backup", "restore", full, "-d", target, "--tables", "accounts"])
    #expect(r.status == 0, "\(r.stderr)")
    let tables = try sqlite3(
      target, "SELECT name FROM sqlite_schema WHERE type IN ('table','index','trigger') ORDER BY name")
    #expect(
      tables.contains("accounts") && tables.contains("accounts_owner") && tables.contains("accounts_audit"))
    #expect(!tables.contains("kv") && !tables.contains("calc"))
    #expect(try sqlite3(target, "SELECT count(*) FROM accounts") == "3\n")
  }

  @Test func tableGlobsOnCreateAndRestore() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let none = try cli.run(["backup", "create", "-d", db, "--tables", "acc*,zz*"])
    #expect(none.status == 2)
    #expect(none.stderr.contains("no table matches \"zz*\""), "\(none.stderr)")
    #expect(cli.backupFiles().isEmpty)
    #expect(try cli.run(["backup", "create", "-d", db, "--jobs", "0"]).status == 64)

    let r = try cli.run(["backup", "create", "-d", db, "--tables", "acc*,k?", "--jobs", "2", "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let id = try #require((r.json as? [String: Any])?["id"] as? String)
    let parts = try #require((r.json as? [String: Any])?["tables"] as? [[String: Any]])
    #expect(Set(parts.compactMap { $0["name"] as? String }) == ["accounts", "kv"])

    let target = cli.work.file("glob.db")
    let restored = try cli.run(["backup", "restore", id, "-d", target, "--tables", "[k]*"])
    #expect(restored.status == 0, "\(restored.stderr)")
    #expect(try sqlite3(target, "SELECT count(*) FROM kv") == "5\n")
    #expect(try sqlite3(target, "SELECT count(*) FROM sqlite_schema WHERE name = 'accounts'") == "0\n")
    let miss = try cli.run(["backup", "restore", id, "-d", cli.work.file("x.db"), "--tables", "calc*"])
    #expect(miss.status == 2)
    #expect(miss.stderr.contains("no table matches \"calc*\" in backup"), "\(miss.stderr)")
  }

  @Test func restoreRefusesExistingTablesUnlessDropExisting() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let id = try cli.create(["-d", db])
    // default target is the source itself: its tables exist
    let refused = try cli.run(["backup", "restore", id])
    #expect(refused.status == 9, "\(refused.stderr)")
    #expect(refused.stderr.contains("--drop-existing"))
    try makeSQLite(db, "UPDATE accounts SET balance = 0; DELETE FROM kv;")
    let replaced = try cli.run(["backup", "restore", id, "--drop-existing"])
    #expect(replaced.status == 0, "\(replaced.stderr)")
    #expect(try sqlite3(db, "SELECT count(*) FROM accounts WHERE balance = 0") == "0\n")
    #expect(try sqlite3(db, "SELECT count(*) FROM kv") == "5\n")
  }

  @Test func dryRunWritesNothing() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let id = try cli.create(["-d", db])
    let target = cli.work.file("never.db")
    let r = try cli.run(["backup", "restore", id, "-d", target, "--dry-run"])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stdout.contains("dry run"))
    #expect(!FileManager.default.fileExists(atPath: target))
  }

  @Test func continueOnErrorReportsFailuresWithItsOwnExitCode() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    // a row that violates its CHECK constraint gets in with the check switched off
    try makeSQLite(
      db,
      """
      CREATE TABLE t(x INTEGER CHECK (x > 0));
      INSERT INTO t VALUES (1);
      PRAGMA ignore_check_constraints = ON;
      INSERT INTO t VALUES (-1);
      INSERT INTO t VALUES (2);
      """)
    let id = try cli.create(["-d", db])
    let strict = cli.work.file("strict.db")
    let failed = try cli.run(["backup", "restore", id, "-d", strict])
    #expect(failed.status == 5, "\(failed.stderr)")
    #expect(!FileManager.default.fileExists(atPath: strict))

    let lenient = cli.work.file("lenient.db")
    let partial = try cli.run(["backup", "restore", id, "-d", lenient, "--continue-on-error"])
    #expect(partial.status == 7, "\(partial.stderr)")
    #expect(partial.stderr.contains("1 statements failed"))
    #expect(try sqlite3(lenient, "SELECT group_concat(x) FROM t") == "1,2\n")
  }
}
