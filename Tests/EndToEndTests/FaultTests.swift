import Foundation
import TestSupport
import Testing

@Suite struct FaultTests {
  @Test func missingAndNonSQLiteDatabases() throws {
    let cli = AIShellRunner()
    let missing = try cli.run(["backup", "create", "-d", cli.work.file("nope.db")])
    #expect(missing.status == 2)
    #expect(missing.stderr.contains("does not exist"))
    let text = cli.work.file("notes.txt")
    try String(repeating: "this is not a database\n", count: 100).write(
      toFile: text, atomically: true, encoding: .utf8)
    let notDB = try cli.run(["backup", "create", "-d", text])
    #expect(notDB.status == 5)
    #expect(notDB.stderr.contains("not a SQLite database"))
    #expect(notDB.stderr.split(separator: "\n").count == 1)
    #expect(cli.backupFiles().isEmpty)
  }

  @Test func databaseLockedPastTheTimeout() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("locked.db")
    try makeSQLite(db, "PRAGMA journal_mode=DELETE; CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    // another writer holds an exclusive lock (rollback-journal mode: readers are shut out)
    let holder = Process()
    holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    holder.arguments = [
      "python3", "-c",
      "import sqlite3,sys,time\nc=sqlite3.connect(sys.argv[1],isolation_level=None)\nc.execute('BEGIN EXCLUSIVE')\nc.execute('INSERT INTO t VALUES (2)')\nprint('locked',flush=True)\ntime.sleep(20)",
      db,
    ]
    let out = Pipe()
    holder.standardOutput = out
    try holder.run()
    defer { holder.terminate() }
    _ = out.fileHandleForReading.availableData  // waits for "locked"
    let started = Date()
    let r = try cli.run(["backup", "create", "-d", db, "--lock-timeout", "1"])
    #expect(r.status == 5, "\(r.stderr)")
    #expect(r.stderr.contains("locked"))
    #expect(Date().timeIntervalSince(started) < 15)
    let list = try #require(try cli.run(["backup", "list", "--json"]).json as? [[String: Any]])
    #expect(list.isEmpty)
  }

  @Test func flippedByteFailsDeepVerifyAndRestoreWritesNothing() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeBigDatabase(db, rows: 3000)
    try makeSQLite(db, sampleSQL)
    for format in ["sql", "json", "csv"] {
      let r = try cli.run(["backup", "create", "-d", db, "--format", format, "--json"])
      let obj = try #require(r.json as? [String: Any])
      let id = try #require(obj["id"] as? String)
      let file = try #require(obj["file"] as? String)
      try flipMiddleByte(of: file, mask: 0x40)

      #expect(try cli.run(["backup", "verify", id]).status == 0, "the cheap check sees only sizes")
      let deep = try cli.run(["backup", "verify", id, "--deep"])
      #expect(deep.status == 8, "\(format): \(deep.stdout)")
      #expect(deep.stdout.contains("FAIL"))
      // the file checked stretch by stretch names the damaged range (on a CPU without the
      // multi-lane kernels the parts' checks find it instead)
      #expect(
        deep.stdout.contains("fails its SHA-256 check: bytes ") || deep.stdout.contains("not confirmed"),
        "\(deep.stdout)")

      let target = cli.work.file("target-\(format).db")
      let restore = try cli.run(["backup", "restore", id, "-d", target])
      #expect(restore.status == 4, "\(format): \(restore.stderr)")
      #expect(!FileManager.default.fileExists(atPath: target), "a corrupt restore left \(target)")

      // an existing target keeps its data even with --drop-existing
      let existing = cli.work.file("existing-\(format).db")
      try makeSQLite(existing, "CREATE TABLE big(keep); INSERT INTO big VALUES ('mine');")
      let over = try cli.run(["backup", "restore", id, "-d", existing, "--drop-existing"])
      #expect(over.status == 4, "\(format): \(over.stderr)")
      #expect(try sqlite3(existing, "SELECT keep FROM big") == "mine\n")

      let verified = try cli.run(["backup", "restore", id, "-d", cli.work.file("v-\(format).db"), "--verify"])
      #expect(verified.status == 4)
      // checked stretch by stretch (PayloadChainCheck): the message names the damaged range
      #expect(verified.stderr.contains("fails its SHA-256 check: bytes "), "\(verified.stderr)")
      #expect(verified.stderr.contains("nothing was restored"), "\(verified.stderr)")
      #expect(!FileManager.default.fileExists(atPath: cli.work.file("v-\(format).db")))
    }
  }

  @Test func truncatedFileAndCorruptManifest() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let r = try cli.run(["backup", "create", "-d", db, "--json"])
    let obj = try #require(r.json as? [String: Any])
    let id = try #require(obj["id"] as? String)
    let file = try #require(obj["file"] as? String)
    let truncated = try #require(FileHandle(forUpdatingAtPath: file))
    try truncated.truncate(atOffset: 10)
    try truncated.close()
    #expect(try cli.run(["backup", "verify", id]).status == 8)
    #expect(try cli.run(["backup", "restore", id, "-d", cli.work.file("t.db")]).status == 4)

    let id2 = try cli.create(["-d", db])
    let manifest = cli.backupDir + "/\(id2).manifest.json"
    try "{ not json".write(toFile: manifest, atomically: true, encoding: .utf8)
    let status = try cli.run(["backup", "status", id2])
    #expect(status.status == 4, "\(status.stderr)")
    #expect(status.stderr.contains("manifest"))
    let list = try #require(try cli.run(["backup", "list", "--json"]).json as? [[String: Any]])
    #expect(list.first { $0["id"] as? String == id2 }?["status"] as? String == "damaged")
    // a later create must not clean up a backup whose manifest is damaged
    _ = try cli.create(["-d", db])
    #expect(cli.backupFiles().contains { $0.hasPrefix(id2) && !$0.hasSuffix(".json") })
  }

  @Test func diskFullDuringCreate() throws {
    guard getuid() == 0 else {
      print("skipped: mounting a tmpfs needs root")
      return
    }
    let cli = AIShellRunner()
    let db = cli.work.file("random.db")
    // about 4 MB that does not compress
    try makeSQLite(
      db,
      "CREATE TABLE r(b BLOB); INSERT INTO r WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<4000) SELECT randomblob(1000) FROM s;"
    )
    let small = cli.work.file("small")
    try FileManager.default.createDirectory(atPath: small, withIntermediateDirectories: true)
    let mount = try shell("mount -t tmpfs -o size=1m tmpfs '\(small)'")
    guard mount.status == 0 else {
      print("skipped: cannot mount a tmpfs here: \(mount.stderr)")
      return
    }
    defer { _ = try? shell("umount '\(small)'") }
    let r = try cli.run(["backup", "create", "-d", db, "--backup-dir", small])
    #expect(r.status == 6, "\(r.stderr)")
    #expect(r.stderr.contains("No space left on device"))
    #expect(r.stderr.split(separator: "\n").count == 1)
    let list = try #require(
      try cli.run(["backup", "list", "--json", "--backup-dir", small]).json as? [[String: Any]])
    #expect(list.allSatisfy { $0["status"] as? String != "complete" })
    #expect(((try? FileManager.default.contentsOfDirectory(atPath: small)) ?? []).isEmpty)
  }

  @Test func killedCreateIsNeverCompleteAndTheNextCreateCleansUp() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("big.db")
    try makeBigDatabase(db, rows: 400_000)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: AIShellRunner.binary)
    p.arguments = ["backup", "create", "-d", db, "-c", "bzip2", "--backup-dir", cli.backupDir]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    // wait until the data file exists and has bytes, then kill -9
    var killed = false
    for _ in 0..<400 {
      if let f = cli.backupFiles().first(where: { $0.hasSuffix(".bz2") }),
        let size = try? FileManager.default.attributesOfItem(atPath: cli.backupDir + "/" + f)[.size] as? Int,
        size > 0
      {
        kill(p.processIdentifier, SIGKILL)
        killed = true
        break
      }
      usleep(25_000)
    }
    p.waitUntilExit()
    try #require(killed, "the create finished before it could be killed")
    let list = try #require(try cli.run(["backup", "list", "--json"]).json as? [[String: Any]])
    #expect(list.count == 1)
    #expect(list.first?["status"] as? String == "incomplete")
    let orphan = try #require(list.first?["id"] as? String)
    #expect(try cli.run(["backup", "restore", orphan, "-d", cli.work.file("x.db")]).status == 2)

    let small = cli.work.file("small.db")
    try makeSQLite(small, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    let next = try cli.create(["-d", small])
    let after = try #require(try cli.run(["backup", "list", "--json"]).json as? [[String: Any]])
    #expect(after.map { $0["id"] as? String } == [next])
    #expect(after.first?["status"] as? String == "complete")
    #expect(!cli.backupFiles().contains { $0.hasPrefix(orphan) })
  }

  @Test func concurrentWriterNeverTearsTheSnapshot() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("bank.db")
    // two tables; transfers move money between them, so only one snapshot keeps the total
    try makeSQLite(
      db,
      """
      PRAGMA journal_mode=WAL;
      CREATE TABLE a(id INTEGER PRIMARY KEY, balance INTEGER, pad TEXT);
      CREATE TABLE b(id INTEGER PRIMARY KEY, balance INTEGER, pad TEXT);
      INSERT INTO a WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<150000) SELECT i, 100, hex(randomblob(40)) FROM s;
      INSERT INTO b WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<150000) SELECT i, 100, hex(randomblob(40)) FROM s;
      """)
    let total = 300_000 * 100
    let writer = Process()
    writer.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    writer.arguments = [
      "python3", "-c",
      """
      import sqlite3, sys, random, time, os
      c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
      n = 0
      print('ready', flush=True)
      while not os.path.exists(sys.argv[2]):
          i, j, amt = random.randint(1, 150000), random.randint(1, 150000), random.randint(1, 50)
          c.execute('BEGIN IMMEDIATE')
          c.execute('UPDATE a SET balance = balance - ? WHERE id = ?', (amt, i))
          c.execute('UPDATE b SET balance = balance + ? WHERE id = ?', (amt, j))
          c.execute('COMMIT')
          n += 1
      print(n, flush=True)
      """,
      db, cli.work.file("stop"),
    ]
    let out = Pipe()
    writer.standardOutput = out
    try writer.run()
    _ = out.fileHandleForReading.availableData  // "ready"
    usleep(200_000)
    let id = try cli.create(["-d", db, "--format", "sql"])
    _ = FileManager.default.createFile(atPath: cli.work.file("stop"), contents: nil)
    writer.waitUntilExit()
    let transfers =
      Int(
        String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
          .trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
    #expect(transfers > 0, "the writer must have committed during the backup")
    let target = cli.work.file("restored.db")
    let r = try cli.run(["backup", "restore", id, "-d", target])
    #expect(r.status == 0, "\(r.stderr)")
    let sum = try sqlite3(target, "SELECT (SELECT sum(balance) FROM a) + (SELECT sum(balance) FROM b)")
    #expect(sum == "\(total)\n")
  }
}
