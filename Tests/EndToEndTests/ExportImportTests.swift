import Foundation
import TestSupport
import Testing

@Suite struct ExportImportTests {
  @Test func exportWipeImportRestoreGivesIdenticalData() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("source.db")
    try makeSQLite(db, sampleSQL)
    let id = try cli.create(["-d", db])

    // to a folder (created), with the manifest beside the file
    let folder = cli.work.file("exported")
    let toFolder = try cli.run(["backup", "export", id, folder, "--json"])
    #expect(toFolder.status == 0, "\(toFolder.stderr)")
    let out = try #require(toFolder.json as? [String: Any])
    let file = try #require(out["file"] as? String)
    #expect(file.hasPrefix(folder + "/") && file.hasSuffix(".sql.zst"))
    #expect(FileManager.default.fileExists(atPath: folder + "/\(id).manifest.json"))
    let sum = try shell("sha256sum '\(file)' | cut -d' ' -f1").stdout.trimmingCharacters(
      in: .whitespacesAndNewlines)
    #expect(out["sha256"] as? String == sum)
    // never overwritten without --force
    let again = try cli.run(["backup", "export", id, folder])
    #expect(again.status == 9)
    #expect(again.stderr.contains("--force"))
    #expect(try cli.run(["backup", "export", id, folder, "--force"]).status == 0)

    // to a file path, re-encoded with gzip: a standard .gz file, its manifest describes the copy
    let other = cli.work.file("gz")
    let gzPath = other + "/copy.sql.gz"
    let toFile = try cli.run(["backup", "export", id, gzPath, "--compress", "gzip", "--json"])
    #expect(toFile.status == 0, "\(toFile.stderr)")
    let viaGzip = cli.work.file("via-gzip.db")
    #expect(try shell("gzip -dc '\(gzPath)' | sqlite3 '\(viaGzip)'").status == 0)
    #expect(try snapshot(viaGzip) == snapshot(db))
    let copyManifest = try #require(
      try JSONSerialization.jsonObject(
        with: Data(contentsOf: URL(fileURLWithPath: other + "/\(id).manifest.json")))
        as? [String: Any])
    #expect((copyManifest["compression"] as? [String: Any])?["algorithm"] as? String == "gzip")
    #expect((copyManifest["file"] as? [String: Any])?["name"] as? String == "copy.sql.gz")
    #expect(copyManifest["id"] as? String == id)
    // without metadata
    let bare = cli.work.file("bare")
    #expect(try cli.run(["backup", "export", id, bare, "--no-include-metadata"]).status == 0)
    #expect(try FileManager.default.contentsOfDirectory(atPath: bare).count == 1)

    // wipe the backup directory, import both copies back (by file and by manifest path)
    try FileManager.default.removeItem(atPath: cli.backupDir)
    let imported = try cli.run(["backup", "import", gzPath])
    #expect(imported.status == 0, "\(imported.stderr)")
    #expect(imported.lastLine == id)
    let dup = try cli.run(["backup", "import", folder + "/\(id).manifest.json"])
    #expect(dup.status == 9)
    let replaced = try cli.run(["backup", "import", folder + "/\(id).manifest.json", "--force", "--verify"])
    #expect(replaced.status == 0, "\(replaced.stderr)")
    let list = try #require(try cli.run(["backup", "list", "--json"]).json as? [[String: Any]])
    #expect(list.map { $0["id"] as? String } == [id])

    let target = cli.work.file("restored.db")
    let restore = try cli.run(["backup", "restore", id, "-d", target])
    #expect(restore.status == 0, "\(restore.stderr)")
    #expect(try snapshot(target) == snapshot(db))
    #expect(try sqlite3(target, ".dump") == sqlite3(db, ".dump"))
  }

  @Test func importRefusesDamagedCopiesAndNonBackups() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let id = try cli.create(["-d", db])
    let folder = cli.work.file("exp")
    #expect(try cli.run(["backup", "export", id, folder]).status == 0)
    try FileManager.default.removeItem(atPath: cli.backupDir)
    // flip one byte of the exported file
    let file = try #require(
      try FileManager.default.contentsOfDirectory(atPath: folder).first { !$0.hasSuffix(".json") })
    let path = folder + "/" + file
    var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    bytes[bytes.count / 2] ^= 0xFF
    try bytes.write(to: URL(fileURLWithPath: path))
    let damaged = try cli.run(["backup", "import", path])
    #expect(damaged.status == 4, "\(damaged.stderr)")
    #expect(cli.backupFiles().filter { !$0.hasPrefix(".") }.isEmpty)

    // a manifest whose file name would leave the folder
    let manifestPath = folder + "/\(id).manifest.json"
    var manifest = try #require(
      try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: manifestPath)))
        as? [String: Any])
    var fileInfo = try #require(manifest["file"] as? [String: Any])
    fileInfo["name"] = "../escape.sql.zst"
    manifest["file"] = fileInfo
    try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: manifestPath))
    let escape = try cli.run(["backup", "import", manifestPath])
    #expect(escape.status == 4, "\(escape.stderr)")

    let junk = cli.work.file("notes.txt")
    try "just some text\n".write(toFile: junk, atomically: true, encoding: .utf8)
    let notBackup = try cli.run(["backup", "import", junk])
    #expect(notBackup.status == 64)
    #expect(notBackup.stderr.contains("is not a backup"))
    #expect(try cli.run(["backup", "import", cli.work.file("absent.sql")]).status == 2)

    let pg = cli.work.file("pg.sql")
    try "--\n-- PostgreSQL database dump\n--\n\nSET statement_timeout = 0;\n".write(
      toFile: pg, atomically: true, encoding: .utf8)
    let pgResult = try cli.run(["backup", "import", pg])
    // a pg_dump script cut short is refused (a complete one is imported: PostgresImportTests)
    #expect(pgResult.status == 4)
    #expect(pgResult.stderr.contains("pg_dump script is incomplete"))
    let my = cli.work.file("my.sql.gz")
    #expect(
      try shell("printf -- '-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB\\n' | gzip > '\(my)'").status == 0)
    // a mariadb-dump script cut short (no closing "-- Dump completed" line) is refused
    let myResult = try cli.run(["backup", "import", my])
    #expect(myResult.status == 4)
    #expect(myResult.stderr.contains("truncated"))
    #expect(cli.backupFiles().allSatisfy { !$0.hasSuffix(".json") })
  }

  @Test(arguments: ["gzip", "bzip2", "zstd", "cat"])
  func importingASQLiteDumpRestoresAndVerifies(compressor: String) throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let dump = cli.work.file("dump.sql.x")
    #expect(try shell("sqlite3 '\(db)' .dump | \(compressor) > '\(dump)'").status == 0)
    let r = try cli.run(["backup", "import", dump, "--database", db, "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let out = try #require(r.json as? [String: Any])
    #expect(out["sourceKind"] as? String == "sqlite3-dump")
    let backup = try #require(out["backup"] as? [String: Any])
    let id = try #require(backup["id"] as? String)
    #expect(backup["database"] as? String == db)
    let tables = try #require(backup["tables"] as? [[String: Any]])
    #expect(
      Set(tables.compactMap { $0["name"] as? String }) == ["accounts", "order items", "kv", "calc", "child"])
    #expect(tables.first { $0["name"] as? String == "order items" }?["rows"] as? Int == 5)

    let verify = try cli.run(["backup", "verify", id, "--test"])
    #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
    let target = cli.work.file("restored.db")
    let restore = try cli.run(["backup", "restore", id, "-d", target])
    #expect(restore.status == 0, "\(restore.stderr)")
    #expect(try sqlite3(target, ".dump") == sqlite3(db, ".dump"))
    // one table alone, like any other backup
    let one = cli.work.file("one.db")
    #expect(try cli.run(["backup", "restore", id, "-d", one, "--tables", "kv"]).status == 0)
    #expect(try sqlite3(one, "SELECT name FROM sqlite_schema ORDER BY name") == "kv\n")
  }
}
