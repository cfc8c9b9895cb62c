import Foundation
import TestSupport
import Testing

/// MySQL/MariaDB through the built `ai-shell` binary, as a user runs it: the password in
/// MYSQL_PWD, never in a URL on the command line.
@Suite(.serialized) struct MariaDBCLITests {
  /// create -> verify --deep --test -> restore into a new database, in csv and json: the same
  /// table checksums, catalog and values (utf8mb4, every byte value, NULLs, the fidelity set).
  @Test(arguments: ["csv", "json"]) func formatRoundTripThroughTheBinary(format: String) throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("cli")
    try source.sql(myFidelitySQL)
    let cli = AIShellRunner()
    let env = ["MYSQL_PWD": server.password]
    let created = try cli.run(
      ["backup", "create", "-d", server.passwordlessURL(db: source.name), "--format", format, "--json"],
      environment: env)
    #expect(created.status == 0, "\(created.stderr)")
    let id = try #require((created.json as? [String: Any])?["id"] as? String)
    let file = try #require((created.json as? [String: Any])?["file"] as? String)
    #expect(file.contains(".\(format == "csv" ? "tar" : "ndjson")"), "\(file)")
    let verified = try cli.run(["backup", "verify", id, "--deep", "--test"], environment: env)
    #expect(verified.status == 0, "\(verified.stdout) \(verified.stderr)")
    #expect(verified.stdout.contains("verified"))

    let target = server.unusedDatabase("clidst")
    let restored = try cli.run(
      ["backup", "restore", id, "-d", server.passwordlessURL(db: target.name)], environment: env)
    #expect(restored.status == 0, "\(restored.stderr)")
    let (copied, original) = (try myChecksums(target), try myChecksums(source))
    #expect(copied == original, "restored:\n\(copied)\nsource:\n\(original)")
    #expect(try myShape(target) == myShape(source))
    for text in [created.stdout, created.stderr, verified.stdout, restored.stdout, restored.stderr] {
      #expect(!text.contains(server.password), "the password leaked")
    }
  }

  /// `--tables` with globs at backup time (only the matching tables, in csv) and at restore time
  /// (a subset of those); a glob that matches nothing is refused before anything is written.
  @Test func tableGlobsThroughTheBinary() throws {
    guard let url = mariadbURL() else { return }
    let server = MyServer(url)
    let source = try server.freshDatabase("glob")
    try source.sql(myFidelitySQL)
    let cli = AIShellRunner()
    let env = ["MYSQL_PWD": server.password]
    let location = server.passwordlessURL(db: source.name)
    let none = try cli.run(["backup", "create", "-d", location, "--tables", "t*,zz*"], environment: env)
    #expect(none.status == 2)
    #expect(none.stderr.contains("no table matches \"zz*\""), "\(none.stderr)")
    #expect(cli.backupFiles().isEmpty)

    let r = try cli.run(
      [
        "backup", "create", "-d", location, "--tables", "t?xts,ti*,p[a]rent,we*", "--format", "csv", "--json",
      ],
      environment: env)
    #expect(r.status == 0, "\(r.stderr)")
    let obj = try #require(r.json as? [String: Any])
    let id = try #require(obj["id"] as? String)
    let tables = try #require(obj["tables"] as? [[String: Any]])
    #expect(
      Set(tables.compactMap { $0["name"] as? String }) == ["texts", "times", "parent", "we`ird tab le"])

    let target = server.unusedDatabase("globdst")
    let restored = try cli.run(
      ["backup", "restore", id, "-d", server.passwordlessURL(db: target.name), "--tables", "t*"],
      environment: env)
    #expect(restored.status == 0, "\(restored.stderr)")
    #expect(
      try target.sql(
        "SELECT GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
      ) == "texts,times")
    #expect(try myChecksums(target) == myChecksums(source, tables: ["texts", "times"]))
  }

  /// The server process is killed (SIGKILL, a crash: no shutdown) in the middle of a backup,
  /// on a server of the test's own: one clear line, a database exit code, and the backup
  /// directory exactly as before (no manifest, no leftover data file, the earlier backup still
  /// the only one listed). The server then restarts on its data, which crash recovery kept, and
  /// a backup works again.
  @Test func serverKilledMidBackup() throws {
    guard let url = mariadbURL() else { return }
    let main = MyServer(url)
    let own = try OwnTestServer(
      script: "mariadb-test-server.sh", portVariable: "MARIADB_PORT", mainPort: Int(main.port) ?? 53306,
      environment: ["AI_SHELL_TEST_MARIADB_PASSWORD": main.password])
    let server = MyServer("mysql://\(main.user):\(main.password)@127.0.0.1:\(own.port)/")
    // about 100 MB of hard-to-compress rows: several seconds to back up
    try server.client(nil, "CREATE DATABASE big_db")
    try server.client(
      "big_db",
      """
      CREATE TABLE small (id INT PRIMARY KEY);
      INSERT INTO small VALUES (1), (2);
      CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(400)) ENGINE=InnoDB;
      INSERT INTO big SELECT seq, CONCAT(SHA2(seq, 512), SHA2(seq + 1, 512), MD5(seq)) FROM seq_1_to_350000;
      """)
    let cli = AIShellRunner()
    let env = ["MYSQL_PWD": main.password]
    let location = server.passwordlessURL(db: "big_db")
    let earlier = try cli.create(["-d", location, "--tables", "small"], environment: env)
    let before = cli.backupFiles()
    let listed = try cli.run(["backup", "list", "--json"]).stdout

    let job = BackgroundJob { try cli.run(["backup", "create", "-d", location], environment: env) }
    #expect(waitForData(in: cli.backupDir, atLeast: 256 * 1024, ignoring: before, seconds: 120))
    try own.kill(pidFile: "mariadb/mysqld.pid")
    let outcome = try #require(job.wait(seconds: 120), "the backup did not end after the server was killed")
    let failed = try outcome.get()
    #expect(failed.status == 5, "\(failed.stdout) \(failed.stderr)")
    let message = failed.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
    #expect(!message.isEmpty && !message.contains("\n"), "\(failed.stderr)")
    #expect(message.contains("127.0.0.1:\(own.port)"), "\(message)")
    #expect(message.lowercased().contains("lost connection") || message.contains("gone away"), "\(message)")
    #expect(!message.contains(main.password))
    #expect(failed.stdout.isEmpty)
    #expect(cli.backupFiles() == before, "the backup directory changed")
    #expect(try cli.run(["backup", "list", "--json"]).stdout == listed)
    #expect(try cli.run(["backup", "verify", earlier, "--deep"]).status == 0)

    // the script brings the same server back; InnoDB crash recovery kept every committed row
    try own.run("restart")
    #expect(try server.client("big_db", "SELECT COUNT(*) FROM big") == "350000")
    let again = try cli.run(
      ["backup", "create", "-d", location, "--tables", "small", "--json"], environment: env)
    #expect(again.status == 0, "\(again.stderr)")
  }
}

/// `table checksum` lines (CHECKSUM TABLE ... EXTENDED) of a database's base tables, or of
/// `tables`, in name order.
func myChecksums(_ db: MyScratch, tables: [String]? = nil) throws -> String {
  let names =
    try tables
    ?? db.sql(
      "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1"
    ).split(separator: "\n").map(String.init)
  let quoted = names.map { "`" + $0.replacingOccurrences(of: "`", with: "``") + "`" }.joined(separator: ", ")
  let rows = try db.sql("CHECKSUM TABLE \(quoted) EXTENDED").split(separator: "\n")
  // "db.table<TAB>checksum": the database name differs between source and copy
  return rows.map { row in
    let cols = row.split(separator: "\t", omittingEmptySubsequences: false)
    return "\(cols.first.map { $0.dropFirst(db.name.count + 1) } ?? "") \(cols.last ?? "")"
  }.sorted().joined(separator: "\n")
}
