import Foundation
import TestSupport
import Testing

@Suite struct EncryptionTests {
  /// A key pair made by our keygen.
  func keygen(_ cli: AIShellRunner) throws -> (identity: String, recipient: String) {
    let file = cli.work.file("key.txt")
    let r = try cli.run(["backup", "keygen", "-o", file])
    #expect(r.status == 0, "\(r.stderr)")
    return (file, r.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
  }

  @Test func keygenWritesAnAgeIdentityOnlyItsOwnerCanRead() throws {
    let cli = AIShellRunner()
    let (file, recipient) = try keygen(cli)
    #expect(recipient.hasPrefix("age1"))
    let mode = try #require(try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int)
    #expect(mode & 0o777 == 0o600)
    #expect(
      try shell("age-keygen -y '\(file)'").stdout.trimmingCharacters(in: .whitespacesAndNewlines) == recipient
    )
    #expect(try cli.run(["backup", "keygen", "-o", file]).status == 9, "never overwrites without --force")
  }

  @Test func encryptedBackupDecryptsWithTheAgeCLIAndRestoresWithTheTool() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let (identity, recipient) = try keygen(cli)
    let r = try cli.run(["backup", "create", "-d", db, "--encrypt", "--recipient", recipient, "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let obj = try #require(r.json as? [String: Any])
    let file = try #require(obj["file"] as? String)
    let id = try #require(obj["id"] as? String)
    #expect(file.hasSuffix(".sql.zst.age"))
    #expect(obj["encrypted"] as? Bool == true)
    #expect(obj["recipients"] as? [String] == [recipient])

    // the standard tools alone restore it
    let viaCLI = cli.work.file("via-age.db")
    let piped = try shell("age -d -i '\(identity)' '\(file)' | zstd -dc | sqlite3 '\(viaCLI)'")
    #expect(piped.status == 0, "\(piped.stderr)")
    #expect(try snapshot(viaCLI) == snapshot(db))

    // the tool needs the identity
    let noKey = try cli.run(["backup", "restore", id, "-d", cli.work.file("x.db")])
    #expect(noKey.status == 64)
    #expect(noKey.stderr.contains("--identity"))
    let restored = cli.work.file("restored.db")
    let ok = try cli.run(["backup", "restore", id, "-d", restored, "--identity", identity])
    #expect(ok.status == 0, "\(ok.stderr)")
    #expect(try snapshot(restored) == snapshot(db))
    let verify = try cli.run(["backup", "verify", id, "--deep", "--identity", identity])
    #expect(verify.status == 0, "\(verify.stdout)")
    let status = try cli.run(["backup", "status", id, "--verify", "--identity", identity])
    #expect(status.stdout.contains("Integrity   ok"))
    #expect(status.stdout.contains(recipient))

    // a wrong identity writes nothing
    let other = cli.work.file("other.txt")
    _ = try cli.run(["backup", "keygen", "-o", other])
    let wrong = try cli.run(["backup", "restore", id, "-d", cli.work.file("wrong.db"), "--identity", other])
    #expect(wrong.status == 9, "\(wrong.stderr)")
    #expect(!FileManager.default.fileExists(atPath: cli.work.file("wrong.db")))
    #expect(!wrong.stderr.contains("AGE-SECRET-KEY"))
  }

  @Test func encryptWithoutARecipientFailsBeforeAnyWork() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, "CREATE TABLE t(x);")
    let r = try cli.run(["backup", "create", "-d", db, "--encrypt"])
    #expect(r.status == 64)
    #expect(r.stderr.contains("--encrypt needs a recipient"))
    #expect(cli.backupFiles().isEmpty)
    let stray = try cli.run(["backup", "create", "-d", db, "--recipient", "age1x"])
    #expect(stray.status == 64, "a recipient without --encrypt would silently not encrypt")
    let bad = try cli.run(["backup", "create", "-d", db, "--encrypt", "--recipient", "age1notakey"])
    #expect(bad.status == 64)
    #expect(cli.backupFiles().isEmpty)
  }

  @Test func passphraseBackupsRoundTrip() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let env = ["AI_SHELL_PASSPHRASE": "correct horse battery staple", "AI_SHELL_SCRYPT_WORK_FACTOR": "10"]
    let r = try cli.run(["backup", "create", "-d", db, "--encrypt", "--format", "json"], environment: env)
    #expect(r.status == 0, "\(r.stderr)")
    let id = r.lastLine
    let manifest = try String(contentsOfFile: cli.backupDir + "/\(id).manifest.json", encoding: .utf8)
    #expect(manifest.contains("\"scryptWorkFactor\" : 10"), "the work factor is recorded")
    let ok = try cli.run(["backup", "verify", id, "--test"], environment: env)
    #expect(ok.status == 0, "\(ok.stdout) \(ok.stderr)")
    let wrong = try cli.run(
      ["backup", "restore", id, "-d", cli.work.file("w.db")], environment: ["AI_SHELL_PASSPHRASE": "nope"])
    #expect(wrong.status == 9)
    let passFile = cli.work.file("pass")
    try "correct horse battery staple\n".write(toFile: passFile, atomically: true, encoding: .utf8)
    let restored = cli.work.file("r.db")
    let viaFile = try cli.run(["backup", "restore", id, "-d", restored, "--passphrase-file", passFile])
    #expect(viaFile.status == 0, "\(viaFile.stderr)")
    #expect(try snapshot(restored) == snapshot(db))
  }

  @Test func noPlaintextReachesTheDiskAndTheManifestHoldsNoData() throws {
    let cli = AIShellRunner()
    let source = TempDir("ai-shell-source")
    let db = source.file("s.db")
    let marker = "MARKER-\(UUID().uuidString)"
    try makeSQLite(db, "CREATE TABLE secrets(v TEXT); INSERT INTO secrets VALUES ('\(marker)');")
    let (identity, recipient) = try keygen(cli)
    let tmp = cli.work.file("tmp")
    try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
    let env = ["TMPDIR": tmp]
    for format in ["sql", "json", "csv"] {
      let id = try cli.run(
        [
          "backup", "create", "-d", db, "--encrypt", "--recipient", recipient, "--format", format, "--verify",
        ],
        environment: env
      ).lastLine
      let verify = try cli.run(["backup", "verify", id, "--test", "--identity", identity], environment: env)
      #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
    }
    let found = try shell("grep -rl '\(marker)' '\(cli.backupDir)' '\(tmp)' || true")
    #expect(found.stdout.isEmpty, "plaintext found in \(found.stdout)")
  }

  @Test func tamperingIsDetectedAndNothingIsApplied() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeBigDatabase(db, rows: 5000)
    let (identity, recipient) = try keygen(cli)
    let r = try cli.run(["backup", "create", "-d", db, "--encrypt", "--recipient", recipient, "--json"])
    let obj = try #require(r.json as? [String: Any])
    let id = try #require(obj["id"] as? String)
    let file = try #require(obj["file"] as? String)
    try flipMiddleByte(of: file, mask: 0x01)
    let verify = try cli.run(["backup", "verify", id, "--deep", "--identity", identity])
    #expect(verify.status == 8)
    let target = cli.work.file("t.db")
    let restore = try cli.run(["backup", "restore", id, "-d", target, "--identity", identity])
    #expect(restore.status == 4, "\(restore.stderr)")
    #expect(!FileManager.default.fileExists(atPath: target))
  }

  @Test func oneSmallTableOfALargeEncryptedBackupReadsLittleOfTheFile() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeBigDatabase(db, rows: 60_000)
    try makeSQLite(db, "CREATE TABLE small(x); INSERT INTO small VALUES (1), (2), (3);")
    let (identity, recipient) = try keygen(cli)
    let id = try cli.create(["-d", db, "--encrypt", "--recipient", recipient])
    let r = try cli.run(
      [
        "backup", "restore", id, "-d", cli.work.file("small.db"), "--tables", "small", "--identity", identity,
        "--json",
      ])
    #expect(r.status == 0, "\(r.stderr)")
    let obj = try #require(r.json as? [String: Any])
    let read = try #require(obj["bytesRead"] as? Int)
    let size = try #require(obj["fileSizeBytes"] as? Int)
    #expect(read > 0 && read * 20 < size, "read \(read) of \(size) bytes")
    #expect(try sqlite3(cli.work.file("small.db"), "SELECT count(*) FROM small") == "3\n")
  }

  @Test func configuredRecipientsAndIdentityFileAreUsedWhenNoFlagIsGiven() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let (identity, recipient) = try keygen(cli)
    #expect(try cli.run(["backup", "config", "--set", "encryption.recipients=\(recipient)"]).status == 0)
    let r = try cli.run(["backup", "create", "-d", db, "--encrypt", "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let obj = try #require(r.json as? [String: Any])
    #expect(obj["recipients"] as? [String] == [recipient])
    let id = try #require(obj["id"] as? String)
    // without an identity anywhere the restore asks for one; with encryption.identityFile it works
    #expect(try cli.run(["backup", "restore", id, "-d", cli.work.file("a.db")]).status == 64)
    #expect(try cli.run(["backup", "config", "--set", "encryption.identityFile=\(identity)"]).status == 0)
    let restored = cli.work.file("b.db")
    let ok = try cli.run(["backup", "restore", id, "-d", restored])
    #expect(ok.status == 0, "\(ok.stderr)")
    #expect(try snapshot(restored) == snapshot(db))
    // without --encrypt the configured recipients do not turn encryption on by themselves
    let plain = try #require(try cli.run(["backup", "create", "-d", db, "--json"]).json as? [String: Any])
    #expect(plain["encrypted"] as? Bool == false)
  }

  @Test func exportEncryptMakesAnAgeCopyThatImportsBack() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let (identity, recipient) = try keygen(cli)
    let id = try cli.create(["-d", db])
    let out = cli.work.file("exported/")
    let r = try cli.run(["backup", "export", id, out, "--encrypt", "--recipient", recipient, "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let file = try #require((r.json as? [String: Any])?["file"] as? String)
    #expect(file.hasSuffix(".sql.zst.age"))
    let viaCLI = cli.work.file("via-age.db")
    #expect(try shell("age -d -i '\(identity)' '\(file)' | zstd -dc | sqlite3 '\(viaCLI)'").status == 0)
    #expect(try snapshot(viaCLI) == snapshot(db))
    #expect(
      try cli.run(["backup", "export", id, cli.work.file("again/"), "--recipient", recipient]).status == 64)

    // a fresh backup directory: the encrypted copy imports and restores with the identity
    try FileManager.default.removeItem(atPath: cli.backupDir)
    let imported = try cli.run(["backup", "import", file, "--json"])
    #expect(imported.status == 0, "\(imported.stderr)")
    let restored = cli.work.file("r.db")
    let ok = try cli.run(["backup", "restore", id, "-d", restored, "--identity", identity])
    #expect(ok.status == 0, "\(ok.stderr)")
    #expect(try snapshot(restored) == snapshot(db))
  }

  @Test func aDumpEncryptedByTheAgeCLIImportsAndStaysEncrypted() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let (identity, recipient) = try keygen(cli)
    let dump = cli.work.file("dump.sql.gz.age")
    #expect(try shell("sqlite3 '\(db)' .dump | gzip | age -r '\(recipient)' > '\(dump)'").status == 0)
    let noKey = try cli.run(["backup", "import", dump])
    #expect(noKey.status == 64)
    #expect(noKey.stderr.contains("age-encrypted"))
    let r = try cli.run(["backup", "import", dump, "--identity", identity, "--database", db, "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let list = try #require(try cli.run(["backup", "list", "--json"]).json as? [[String: Any]])
    #expect(list.count == 1)
    #expect(list.first?["encrypted"] as? Bool == true)
    #expect(list.first?["recipients"] as? [String] == [recipient])
    let id = try #require(list.first?["id"] as? String)
    let restored = cli.work.file("r.db")
    let ok = try cli.run(["backup", "restore", id, "-d", restored, "--identity", identity])
    #expect(ok.status == 0, "\(ok.stderr)")
    #expect(try sqlite3(restored, "SELECT count(*) FROM accounts") == "3\n")
    #expect(try sqlite3(restored, ".dump") == sqlite3(db, ".dump"))
  }
}
