import Foundation
import TestSupport
import Testing

@Suite struct CommandTests {
  @Test func helpNamesDefaultsAndExitCodes() throws {
    let cli = AIShellRunner()
    let root = try cli.run(["--help"])
    #expect(root.status == 0)
    #expect(root.stdout.contains("EXIT CODES"))
    #expect(root.stdout.contains("64"))
    let create = try cli.run(["backup", "create", "--help"])
    let help = create.stdout.split(whereSeparator: \.isWhitespace).joined(separator: " ")
    #expect(
      help.contains(
        "--compression <compression> Compression of every member (default: the config's, else zstd). (values: gzip, bzip2, zstd, none)"
      ))
    #expect(create.stdout.contains("--format"))
    let bad = try cli.run(["backup", "create", "-d", "x.db", "-c", "lz4"])
    #expect(bad.status == 64)
  }

  @Test func idsAcceptUniquePrefixesAndRefuseAmbiguousOnes() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    let a = try cli.create(["-d", db])
    let b = try cli.create(["-d", db])
    #expect(a != b)
    let ambiguous = try cli.run(["backup", "status", "backup-"])
    #expect(ambiguous.status == 3)
    #expect(ambiguous.stderr.contains(a) && ambiguous.stderr.contains(b))
    #expect(ambiguous.stderr.split(separator: "\n").count == 1)
    let unique = try cli.run(["backup", "status", String(b.prefix(b.count - 1))])
    if a.prefix(a.count - 1) != b.prefix(b.count - 1) {
      #expect(unique.status == 0)
      #expect(unique.stdout.contains(b))
    }
    let unknown = try cli.run(["backup", "verify", "backup-19990101"])
    #expect(unknown.status == 2)
    #expect(unknown.stderr.hasPrefix("error: "))
  }

  @Test func listFiltersSortsAndRendersAllOutputs() throws {
    let cli = AIShellRunner()
    let db1 = cli.work.file("one.db")
    let db2 = cli.work.file("two.db")
    try makeSQLite(db1, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    try makeSQLite(
      db2,
      "CREATE TABLE t(x); INSERT INTO t WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<5000) SELECT hex(randomblob(50)) FROM s;"
    )
    let small = try cli.create(["-d", db1, "-n", "alpha"])
    let big = try cli.create(["-d", db2, "-n", "beta", "--format", "json"])

    let json = try cli.run(["backup", "list", "--output", "json"])
    let items = try #require(json.json as? [[String: Any]])
    #expect(items.count == 2)
    #expect(
      items.allSatisfy { $0["sha256"] != nil && $0["tables"] != nil && $0["status"] as? String == "complete" }
    )

    let bySize = try #require(
      try cli.run(["backup", "list", "--json", "--sort", "size", "--order", "asc"]).json as? [[String: Any]])
    #expect(bySize.map { $0["id"] as? String } == [small, big])
    let limited = try #require(
      try cli.run(["backup", "list", "--json", "--sort", "size", "--limit", "1"]).json as? [[String: Any]])
    #expect(limited.map { $0["id"] as? String } == [big])
    let onlyJSON = try #require(
      try cli.run(["backup", "list", "--json", "--format", "json"]).json as? [[String: Any]])
    #expect(onlyJSON.map { $0["id"] as? String } == [big])
    let onlyDB1 = try #require(try cli.run(["backup", "list", "--json", "-d", db1]).json as? [[String: Any]])
    #expect(onlyDB1.map { $0["id"] as? String } == [small])
    let byName = try #require(
      try cli.run(["backup", "list", "--json", "--sort", "name", "--order", "asc"]).json as? [[String: Any]])
    #expect(byName.map { $0["name"] as? String } == ["alpha", "beta"])
    let future = try #require(
      try cli.run(["backup", "list", "--json", "--after", "2999-01-01"]).json as? [[String: Any]])
    #expect(future.isEmpty)
    let past = try #require(
      try cli.run(["backup", "list", "--json", "--before", "2000-01-01"]).json as? [[String: Any]])
    #expect(past.isEmpty)
    let badDate = try cli.run(["backup", "list", "--after", "yesterday"])
    #expect(badDate.status == 64)

    let csv = try cli.run(["backup", "list", "--output", "csv"])
    #expect(csv.stdout.hasPrefix("ID,NAME,CREATED"))
    #expect(csv.stdout.components(separatedBy: "\r\n").filter { !$0.isEmpty }.count == 3)
    let table = try cli.run(["backup", "list"])
    #expect(table.stdout.contains("alpha") && table.stdout.contains("complete"))
  }

  @Test func statusShowsTablesRatioAndIntegrity() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let id = try cli.create(["-d", db])
    let text = try cli.run(["backup", "status", id, "--verify"])
    #expect(text.status == 0, "\(text.stderr)")
    #expect(text.stdout.contains("Integrity   ok"))
    #expect(text.stdout.contains("order items"))
    let json = try #require(try cli.run(["backup", "status", id, "--json"]).json as? [String: Any])
    #expect(json["compressionRatio"] as? Double != nil)
    let backup = try #require(json["backup"] as? [String: Any])
    #expect(backup["id"] as? String == id)
  }

  @Test func deleteNeedsConfirmationOrForce() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, "CREATE TABLE t(x);")
    let id = try cli.create(["-d", db])
    let refused = try cli.run(["backup", "delete", id])
    #expect(refused.status == 9)
    #expect(refused.stderr.contains("--force"))
    #expect(cli.backupFiles().count == 2)
    let deleted = try cli.run(["backup", "delete", id, "--force"])
    #expect(deleted.status == 0, "\(deleted.stderr)")
    #expect(cli.backupFiles().isEmpty)
    #expect(try cli.run(["backup", "status", id]).status == 2)
  }

  @Test func verboseCreateReportsProgressOnStderr() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("big.db")
    try makeBigDatabase(db, rows: 20000)
    let r = try cli.run(["backup", "create", "-d", db, "--verbose"])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stderr.contains("backup:"))
    #expect(r.stderr.contains("/s"))
    #expect(r.stdout.split(separator: "\n").count == 1)
  }
}
