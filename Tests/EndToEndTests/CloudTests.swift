import Foundation
import TestSupport
import Testing

/// `--cloud` through the binary against SeaweedFS (scripts/s3-test-server.sh), which checks
/// every signature.
@Suite struct CloudTests {
  struct Server {
    var endpoint: String
    var accessKey: String
    var secretKey: String
  }

  static let server: Server? = {
    let env = ProcessInfo.processInfo.environment
    guard let ep = env["AI_SHELL_TEST_S3_ENDPOINT"], let ak = env["AI_SHELL_TEST_S3_ACCESS_KEY"],
      let sk = env["AI_SHELL_TEST_S3_SECRET_KEY"]
    else { return nil }
    return Server(endpoint: ep, accessKey: ak, secretKey: sk)
  }()

  static func skip(_ what: String) {
    print("skipped: \(what) (run scripts/s3-test-server.sh start and eval its env)")
  }

  /// The credentials the way a user gives them, and no AWS settings of the machine.
  static func awsEnv(_ s: Server, secret: String? = nil) -> [String: String] {
    [
      "AWS_ACCESS_KEY_ID": s.accessKey, "AWS_SECRET_ACCESS_KEY": secret ?? s.secretKey,
      "AWS_DEFAULT_REGION": "us-east-1",
    ]
  }

  /// A runner whose config points at a new bucket under a prefix with spaces and slashes.
  static func setUp(_ s: Server, prefix: String = "nightly backups/db one", extra: [String] = []) throws -> (
    AIShellRunner, String
  ) {
    let cli = AIShellRunner()
    let bucket = "e2e-" + UUID().uuidString.prefix(12).lowercased()
    let mb = try aws(s, ["s3", "mb", "s3://\(bucket)"])
    guard mb.status == 0 else { throw RunnerError("aws s3 mb failed: \(mb.stderr)") }
    let set = try cli.run(
      [
        "backup", "config", "--set", "cloudProvider=aws-s3", "cloudConfig.bucket=\(bucket)",
        "cloudConfig.endpoint=\(s.endpoint)", "cloudConfig.region=us-east-1", "cloudConfig.prefix=\(prefix)",
        "cloudConfig.forcePathStyle=true", "cloudConfig.partSizeMiB=5", "cloudConfig.parallel=3",
      ] + extra)
    guard set.status == 0 else { throw RunnerError("config --set failed: \(set.stderr)") }
    return (cli, bucket)
  }

  struct ToolResult {
    var status: Int32
    var stdout: String
    var stderr: String
  }

  static func aws(_ s: Server, _ args: [String]) throws -> ToolResult {
    let r = try runProcess("aws", ["--endpoint-url", s.endpoint] + args, environment: awsEnv(s))
    return ToolResult(
      status: r.status, stdout: String(decoding: r.stdout, as: UTF8.self),
      stderr: String(decoding: r.stderr, as: UTF8.self))
  }

  /// Object keys in the bucket (recursive listing).
  static func keys(_ s: Server, _ bucket: String) throws -> [String] {
    let r = try aws(
      s, ["s3api", "list-objects-v2", "--bucket", bucket, "--query", "Contents[].Key", "--output", "text"])
    return r.stdout.split(separator: "\t").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
      .filter { !$0.isEmpty && $0 != "None" }.sorted()
  }

  @Test func createListVerifyRestoreImportDelete() throws {
    guard let s = Self.server else { return Self.skip("cloud end to end") }
    let (cli, bucket) = try Self.setUp(s)
    let env = Self.awsEnv(s)
    let db = cli.work.file("source.db")
    try makeBigDatabase(db, rows: 100_000)  // about 11 MiB compressed: a multipart upload
    try makeSQLite(db, "CREATE TABLE small(x); INSERT INTO small VALUES (1), (2), (3);")

    let created = try cli.run(
      ["backup", "create", "-d", db, "--cloud", "--json", "--verbose"], environment: env)
    #expect(created.status == 0, "\(created.stderr)")
    // progress counts the bytes S3 acknowledged: all of them at the end
    #expect(created.stderr.contains("uploaded "), "\(created.stderr)")
    let obj = try #require(created.json as? [String: Any])
    let id = try #require(obj["id"] as? String)
    #expect(try #require(obj["sizeBytes"] as? Int) > 5 << 20)
    #expect(obj["location"] as? String == "local+cloud")
    #expect((obj["cloudFile"] as? String)?.hasPrefix("s3://\(bucket)/nightly backups/db one/\(id).") == true)
    let keys = try Self.keys(s, bucket)
    #expect(keys.count == 2 && keys.allSatisfy { $0.hasPrefix("nightly backups/db one/\(id).") }, "\(keys)")
    // the uploaded file is byte for byte the local one
    let fileName = try #require(cli.backupFiles().first { !$0.hasSuffix(".manifest.json") })
    let copy = cli.work.file("copy.bin")
    #expect(
      try Self.aws(s, ["s3", "cp", "s3://\(bucket)/nightly backups/db one/\(fileName)", copy]).status == 0)
    #expect(
      FileManager.default.contents(atPath: copy)
        == FileManager.default.contents(atPath: cli.backupDir + "/" + fileName))

    // drop the local copy: the bucket alone holds the backup
    #expect(try cli.run(["backup", "delete", id, "--force"]).status == 0)
    #expect(cli.backupFiles().isEmpty)
    let localList = try cli.run(["backup", "list", "--json"])
    #expect((localList.json as? [Any])?.isEmpty == true)
    let list = try cli.run(["backup", "list", "--cloud", "--json"], environment: env)
    #expect(list.status == 0, "\(list.stderr)")
    let items = try #require(list.json as? [[String: Any]])
    #expect(items.count == 1 && items[0]["id"] as? String == id && items[0]["location"] as? String == "cloud")
    let table = try cli.run(["backup", "list", "--cloud"], environment: env)
    #expect(table.stdout.contains("LOCATION") && table.stdout.contains("cloud"))

    // status and export read a cloud-only backup; the export does not enter the catalog
    let status = try cli.run(
      ["backup", "status", String(id.prefix(26)), "--cloud", "--json"], environment: env)
    #expect(status.status == 0, "\(status.stderr)")
    #expect(((status.json as? [String: Any])?["backup"] as? [String: Any])?["id"] as? String == id)
    #expect(try cli.run(["backup", "status", id]).status == 2)
    let exported = try cli.run(
      ["backup", "export", id, cli.work.file("out/"), "--cloud", "--json"], environment: env)
    #expect(exported.status == 0, "\(exported.stderr)")
    #expect(
      FileManager.default.contents(atPath: cli.work.file("out/\(fileName)"))
        == FileManager.default.contents(atPath: copy))
    #expect(FileManager.default.fileExists(atPath: cli.work.file("out/\(id).manifest.json")))
    #expect(cli.backupFiles().isEmpty)
    #expect(try cli.run(["backup", "export", id, cli.work.file("out2/")]).status == 2)

    let verify = try cli.run(["backup", "verify", id, "--deep", "--cloud"], environment: env)
    #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
    #expect(verify.stdout.contains("verified"))

    // a table-level restore reads only that table's range
    let small = try cli.run(
      ["backup", "restore", id, "--cloud", "-d", cli.work.file("small.db"), "--tables", "small", "--json"],
      environment: env)
    #expect(small.status == 0, "\(small.stderr)")
    let outcome = try #require(small.json as? [String: Any])
    let read = try #require(outcome["bytesRead"] as? Int)
    let size = try #require(outcome["fileSizeBytes"] as? Int)
    #expect(read > 0 && read * 20 < size, "read \(read) of \(size)")
    #expect(try sqlite3(cli.work.file("small.db"), "SELECT count(*) FROM small") == "3\n")

    let full = try cli.run(
      ["backup", "restore", id, "--cloud", "-d", cli.work.file("full.db")], environment: env)
    #expect(full.status == 0, "\(full.stderr)")
    #expect(try sqlite3(cli.work.file("full.db"), ".dump") == sqlite3(db, ".dump"))

    // without --cloud the backup is unknown here
    #expect(try cli.run(["backup", "restore", id, "-d", cli.work.file("x.db")]).status == 2)

    let imported = try cli.run(["backup", "import", "--cloud", String(id.prefix(24))], environment: env)
    #expect(imported.status == 0, "\(imported.stderr)")
    #expect(imported.lastLine == id)
    #expect(cli.backupFiles().count == 2)
    #expect(try cli.run(["backup", "verify", id, "--deep"]).status == 0)

    let deleted = try cli.run(["backup", "delete", id, "--cloud", "--force"], environment: env)
    #expect(deleted.status == 0, "\(deleted.stderr)")
    #expect(cli.backupFiles().isEmpty)
    #expect(try Self.keys(s, bucket).isEmpty)
  }

  @Test func withoutLocalCopyAndEncrypted() throws {
    guard let s = Self.server else { return Self.skip("cloud without local copy") }
    let (cli, bucket) = try Self.setUp(s, prefix: "p", extra: ["keepLocalCopy=false"])
    let env = Self.awsEnv(s)
    let db = cli.work.file("source.db")
    try makeSQLite(db, sampleSQL)
    let pass = cli.work.file("pass.txt")
    try "correct horse".write(toFile: pass, atomically: true, encoding: .utf8)
    let work = ["AI_SHELL_SCRYPT_WORK_FACTOR": "10"]
    let id = try cli.run(
      ["backup", "create", "-d", db, "--cloud", "--encrypt", "--passphrase-file", pass, "--verify"],
      environment: env.merging(work) { $1 })
    #expect(id.status == 0, "\(id.stderr)")
    #expect(cli.backupFiles().isEmpty)
    #expect(try Self.keys(s, bucket).count == 2)
    let restore = try cli.run(
      ["backup", "restore", id.lastLine, "--cloud", "-d", cli.work.file("r.db"), "--passphrase-file", pass],
      environment: env)
    #expect(restore.status == 0, "\(restore.stderr)")
    #expect(try snapshot(cli.work.file("r.db")) == snapshot(db))
  }

  /// A `--cloud` schedule uploads each run, and its retention removes old backups from the bucket
  /// too, including those kept only there.
  @Test func scheduleUploadsAndPrunesTheBucket() throws {
    guard let s = Self.server else { return Self.skip("cloud schedule retention") }
    let (cli, bucket) = try Self.setUp(s, prefix: "sched", extra: ["keepLocalCopy=false"])
    let env = Self.awsEnv(s)
    let db = cli.work.file("source.db")
    try makeSQLite(db, sampleSQL)
    let add = try cli.run(
      ["backup", "schedule", "0 3 * * *", "-n", "nightly", "-d", db, "--cloud", "--keep-last", "1"],
      environment: env)
    #expect(add.status == 0, "\(add.stderr)")
    var ids: [String] = []
    for _ in 0..<2 {
      let r = try cli.run(["backup", "schedule", "--run-now", "nightly", "--json"], environment: env)
      #expect(r.status == 0, "\(r.stderr)")
      ids.append(try #require((r.json as? [String: Any])?["backupId"] as? String, "\(r.stdout)"))
      Thread.sleep(forTimeInterval: 1.1)  // ids are per second
    }
    #expect(cli.backupFiles().filter { $0.hasPrefix("backup-") }.isEmpty)  // keepLocalCopy=false
    let keys = try Self.keys(s, bucket)
    #expect(keys.count == 2, "\(keys)")
    #expect(keys.allSatisfy { $0.contains(ids[1]) }, "\(keys)")
    // without credentials the schedule is refused when added, not at 3 am
    let refused = try cli.run(
      ["backup", "schedule", "0 4 * * *", "-n", "other", "-d", db, "--cloud"],
      environment: ["AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "none-such"])
    #expect(refused.status != 0, "\(refused.stdout)")
  }

  /// A refused signature fails the create with one line naming the credential source (not the
  /// secret), and leaves nothing behind: no manifest, no object, no multipart upload.
  /// A cloud copy altered after the upload (same size) is refused by `import --cloud` and nothing
  /// enters the catalog: plain (format version 4: its SHA-256 chain, checked in stretches) and
  /// encrypted (one SHA-256 pass over the stored bytes).
  @Test func tamperedCloudCopyIsNotImported() throws {
    guard let s = Self.server else { return Self.skip("cloud tampered import") }
    let (cli, bucket) = try Self.setUp(s, prefix: "t")
    let env = Self.awsEnv(s)
    let db = cli.work.file("source.db")
    try makeBigDatabase(db, rows: 20_000)
    let pass = cli.work.file("pass.txt")
    try "correct horse".write(toFile: pass, atomically: true, encoding: .utf8)
    let work = ["AI_SHELL_SCRYPT_WORK_FACTOR": "10"]
    for extra in [["-c", "none"], ["--encrypt", "--passphrase-file", pass]] {
      let created = try cli.run(
        ["backup", "create", "-d", db, "--cloud"] + extra, environment: env.merging(work) { $1 })
      #expect(created.status == 0, "\(created.stderr)")
      let id = created.lastLine
      let fileName = try #require(cli.backupFiles().first { $0.hasPrefix(id) && !$0.hasSuffix(".json") })
      var bytes = try #require(FileManager.default.contents(atPath: cli.backupDir + "/" + fileName))
      bytes[bytes.count * 2 / 3] ^= 0x20
      let altered = cli.work.file("altered.bin")
      try bytes.write(to: URL(fileURLWithPath: altered))
      #expect(try Self.aws(s, ["s3", "cp", altered, "s3://\(bucket)/t/\(fileName)"]).status == 0)
      #expect(try cli.run(["backup", "delete", id, "--force"]).status == 0)
      let imported = try cli.run(["backup", "import", "--cloud", id], environment: env)
      #expect(imported.status == 4, "\(imported.stderr)")
      #expect(imported.stderr.contains("t/\(fileName) fails its SHA-256 check"), "\(imported.stderr)")
      #expect(imported.stderr.contains("nothing was imported"), "\(imported.stderr)")
      #expect(cli.backupFiles().isEmpty)
    }
  }

  @Test func wrongSecretFailsCleanly() throws {
    guard let s = Self.server else { return Self.skip("cloud wrong secret") }
    let (cli, bucket) = try Self.setUp(s)
    let db = cli.work.file("source.db")
    try makeSQLite(db, sampleSQL)
    let secret = "definitely-wrong-secret-9876"
    let r = try cli.run(
      ["backup", "create", "-d", db, "--cloud"], environment: Self.awsEnv(s, secret: secret))
    #expect(r.status == 6, "\(r.stderr)")
    #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
    #expect(
      r.stderr.contains("AWS_ACCESS_KEY_ID") && r.stderr.contains("SignatureDoesNotMatch"), "\(r.stderr)")
    #expect(!r.stderr.contains(secret))
    #expect(cli.backupFiles().isEmpty)
    #expect(try Self.keys(s, bucket).isEmpty)
    let uploads = try Self.aws(
      s, ["s3api", "list-multipart-uploads", "--bucket", bucket, "--output", "json"])
    #expect(!uploads.stdout.contains("UploadId"), "\(uploads.stdout)")
  }

  /// A create killed mid-upload leaves a multipart upload and no manifest; the next create
  /// aborts it (no orphaned parts) and the dead backup never lists as complete.
  @Test func killedUploadIsCleanedUpByTheNextRun() throws {
    guard let s = Self.server else { return Self.skip("cloud kill mid-upload") }
    let (cli, bucket) = try Self.setUp(s)
    let db = cli.work.file("source.db")
    try makeBigDatabase(db, rows: 100_000)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: AIShellRunner.binary)
    p.arguments = ["backup", "create", "-d", db, "--cloud", "--limit-rate", "2M"]
    p.environment = ProcessInfo.processInfo.environment.merging(Self.awsEnv(s)) { $1 }.merging([
      "AI_SHELL_BACKUP_DIR": cli.backupDir, "AI_SHELL_CONFIG": cli.configPath,
    ]) { $1 }
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    var killed = false
    for _ in 0..<60 {
      let uploads = try Self.aws(
        s, ["s3api", "list-multipart-uploads", "--bucket", bucket, "--output", "json"])
      if uploads.stdout.contains("UploadId") {
        kill(p.processIdentifier, SIGKILL)
        killed = true
        break
      }
      usleep(250_000)
    }
    p.waitUntilExit()
    try #require(killed, "the create finished before it could be killed")
    #expect(try !Self.keys(s, bucket).contains { $0.hasSuffix(".manifest.json") })
    let list = try #require(
      try cli.run(["backup", "list", "--cloud", "--json"], environment: Self.awsEnv(s)).json
        as? [[String: Any]])
    #expect(!list.contains { $0["status"] as? String == "complete" })

    let small = cli.work.file("small.db")
    try makeSQLite(small, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    let next = try cli.run(["backup", "create", "-d", small, "--cloud"], environment: Self.awsEnv(s))
    #expect(next.status == 0, "\(next.stderr)")
    let uploads = try Self.aws(
      s, ["s3api", "list-multipart-uploads", "--bucket", bucket, "--output", "json"])
    #expect(!uploads.stdout.contains("UploadId"), "\(uploads.stdout)")
    #expect(try Self.keys(s, bucket).allSatisfy { $0.contains(next.lastLine) })
  }

  /// Runs `ai-shell` in the background (for killing things under it); its output goes to files.
  static func background(_ cli: AIShellRunner, _ args: [String], env: [String: String]) throws -> (
    Process, String
  ) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: AIShellRunner.binary)
    p.arguments = args
    p.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }.merging([
      "AI_SHELL_BACKUP_DIR": cli.backupDir, "AI_SHELL_CONFIG": cli.configPath,
    ]) { $1 }
    let errPath = cli.work.file("background-\(UUID().uuidString.prefix(6)).err")
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    p.standardOutput = FileHandle.nullDevice
    p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    try p.run()
    return (p, errPath)
  }

  /// Waits up to `seconds` for `condition`, polling.
  static func waitFor(_ seconds: Double, _ condition: () throws -> Bool) rethrows -> Bool {
    let end = Date().addingTimeInterval(seconds)
    while Date() < end {
      if try condition() { return true }
      usleep(200_000)
    }
    return false
  }

  static func pendingUploads(_ s: Server, _ bucket: String) throws -> String {
    try aws(s, ["s3api", "list-multipart-uploads", "--bucket", bucket, "--output", "json"]).stdout
  }

  /// The server dies mid-upload (the proxy in front of it is killed): the create fails with one
  /// clear line, leaves no manifest and nothing complete; the multipart upload it could not
  /// abort is found by `cleanup --dry-run` once the server is back, and the next create aborts it.
  @Test func serverDyingMidUploadFailsCleanlyAndTheNextRunTidiesUp() throws {
    guard let s = Self.server else { return Self.skip("cloud server killed mid-upload") }
    let upstream = try #require(URL(string: s.endpoint))
    let proxy = try FlakyProxy(upstream: "\(upstream.host!):\(upstream.port!)")
    defer { proxy.stop() }
    let (cli, bucket) = try Self.setUp(s, prefix: "dies")
    #expect(try cli.run(["backup", "config", "--set", "cloudConfig.endpoint=\(proxy.endpoint)"]).status == 0)
    let env = Self.awsEnv(s)
    let db = cli.work.file("source.db")
    try makeBigDatabase(db, rows: 100_000)
    let (p, errPath) = try Self.background(
      cli, ["backup", "create", "-d", db, "--cloud", "--limit-rate", "1M"], env: env)
    defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
    let started = try Self.waitFor(30) { try Self.pendingUploads(s, bucket).contains("UploadId") }
    proxy.stop()
    try #require(started, "no multipart upload began")
    // each attempt waits out the 10 s connect timeout (async-http-client keeps retrying a refused
    // connection until then): 6 tries of the part, 2 of the abort and the delete, about 2 minutes
    let ended = Self.waitFor(240) { !p.isRunning }
    try #require(ended, "the create did not give up after the server died")
    p.waitUntilExit()
    let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    #expect(p.terminationStatus == 6, "\(stderr)")
    // one error line, last; before it only the retry warnings
    let lines = stderr.split(separator: "\n")
    #expect(
      lines.filter { $0.hasPrefix("error: ") }.count == 1 && lines.last?.hasPrefix("error: ") == true,
      "\(stderr)")
    #expect(lines.dropLast().allSatisfy { $0.contains("retrying after attempt") }, "\(stderr)")
    let error = String(lines.last ?? "")
    #expect(
      error.contains("cannot reach S3 at \(proxy.endpoint)") && error.contains("connection refused")
        && error.contains("cloudConfig.endpoint"), "\(error)")
    #expect(try !Self.keys(s, bucket).contains { $0.hasSuffix(".manifest.json") })
    // the server was gone, so the upload could not be aborted: it is still there
    #expect(try Self.pendingUploads(s, bucket).contains("UploadId"))
    #expect(cli.backupFiles().allSatisfy { $0.hasPrefix(".") }, "\(cli.backupFiles())")

    try proxy.start()
    let list = try cli.run(["backup", "list", "--cloud", "--json"], environment: env)
    #expect(list.status == 0, "\(list.stderr)")
    #expect((list.json as? [[String: Any]])?.contains { $0["status"] as? String == "complete" } == false)
    let dry = try cli.run(["backup", "cleanup", "--cloud", "--dry-run", "--json"], environment: env)
    #expect(dry.status == 0, "\(dry.stderr)")
    let report = try #require(dry.json as? [String: Any])
    let removed = try #require(report["removed"] as? [[String: Any]])
    #expect(removed.contains { $0["kind"] as? String == "multipart-upload" }, "\(dry.stdout)")
    #expect(report["dryRun"] as? Bool == true)
    #expect(try Self.pendingUploads(s, bucket).contains("UploadId"))  // a dry run removes nothing

    let small = cli.work.file("small.db")
    try makeSQLite(small, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    let next = try cli.run(["backup", "create", "-d", small, "--cloud"], environment: env)
    #expect(next.status == 0, "\(next.stderr)")
    #expect(try !Self.pendingUploads(s, bucket).contains("UploadId"))
    #expect(try Self.keys(s, bucket).allSatisfy { $0.contains(next.lastLine) })
    #expect(cli.backupFiles().allSatisfy { !$0.hasSuffix(".uploading") }, "\(cli.backupFiles())")
  }

  /// `cleanup --cloud` removes what dead creates left and nothing else: an upload whose create
  /// died here at once, one from elsewhere only past --older-than, a manifest-less backup file
  /// by the age in its id; other software's uploads and objects never.
  @Test func cleanupRemovesOnlyDeadUploadsOfOurs() throws {
    guard let s = Self.server else { return Self.skip("cleanup --cloud") }
    let (cli, bucket) = try Self.setUp(s, prefix: "tidy")
    let env = Self.awsEnv(s)
    func startUpload(_ name: String) throws {
      let r = try Self.aws(
        s, ["s3api", "create-multipart-upload", "--bucket", bucket, "--key", "tidy/\(name)"])
      #expect(r.status == 0, "\(r.stderr)")
    }
    let stamp = DateFormatter()
    stamp.locale = Locale(identifier: "en_US_POSIX")
    stamp.timeZone = TimeZone(identifier: "UTC")
    stamp.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
    let deadHere = "backup-\(stamp.string(from: Date()))-dead"
    try startUpload("\(deadHere).sql.zst")
    try FileManager.default.createDirectory(atPath: cli.backupDir, withIntermediateDirectories: true)
    try Data().write(to: URL(fileURLWithPath: cli.backupDir + "/.\(deadHere).uploading"))
    try startUpload("backup-20261128T000000Z-0e1f.sql.zst")  // another machine's, started just now
    try startUpload("not-ours.bin")
    let orphan = cli.work.file("orphan.bin")
    try Data("x".utf8).write(to: URL(fileURLWithPath: orphan))
    for key in ["tidy/backup-20200101T000000Z-beef.sql.zst", "tidy/other.txt"] {
      #expect(try Self.aws(s, ["s3", "cp", orphan, "s3://\(bucket)/\(key)"]).status == 0)
    }

    let first = try cli.run(["backup", "cleanup", "--cloud", "--json"], environment: env)
    #expect(first.status == 0, "\(first.stderr)")
    let report = try #require(first.json as? [String: Any])
    func names(_ key: String) -> [String] {
      ((report[key] as? [[String: Any]]) ?? []).compactMap {
        ($0["location"] as? String)?.split(separator: "/").last
      }
      .map(String.init).sorted()
    }
    #expect(
      Set(names("removed"))
        == [".\(deadHere).uploading", "\(deadHere).sql.zst", "backup-20200101T000000Z-beef.sql.zst"],
      "\(first.stdout)")
    #expect(names("kept") == ["backup-20261128T000000Z-0e1f.sql.zst"], "\(first.stdout)")
    var pending = try Self.pendingUploads(s, bucket)
    #expect(!pending.contains(deadHere) && pending.contains("0e1f") && pending.contains("not-ours"))
    #expect(try Self.keys(s, bucket) == ["tidy/other.txt"])

    let text = try cli.run(
      ["backup", "cleanup", "--cloud", "--older-than", "0s", "--dry-run"], environment: env)
    #expect(text.status == 0 && text.stdout.contains("would remove multipart-upload"), "\(text.stdout)")
    let second = try cli.run(["backup", "cleanup", "--cloud", "--older-than", "0s"], environment: env)
    #expect(second.status == 0, "\(second.stderr)")
    pending = try Self.pendingUploads(s, bucket)
    #expect(!pending.contains("0e1f") && pending.contains("not-ours"), "\(pending)")
    for bad in ["12", "5y", "-1h", "abc"] {
      let r = try cli.run(["backup", "cleanup", "--cloud", "--older-than", bad], environment: env)
      #expect(r.status == 64 && r.stderr.contains("--older-than"), "\(bad): \(r.stderr)")
    }
    #expect(try cli.run(["backup", "cleanup", "--older-than", "1h"]).status == 64)
  }

  @Test func configErrorsAreClear() throws {
    let cli = AIShellRunner()
    for (assignment, words) in [
      ("cloudConfig.partSizeMiB=2", ["partSizeMiB", "5"]),
      ("cloudConfig.serverSideEncryption=rot13", ["serverSideEncryption", "AES256"]),
      ("cloudConfig.storageClass=cheap", ["storageClass", "GLACIER_IR"]),
      ("cloudConfig.secretAccessKey=abc", ["credentials", "AWS_ACCESS_KEY_ID"]),
      ("cloudConfig.bucket=Not_A_Bucket", ["bucket"]),
      ("cloudConfig.endpoint=ftp://x", ["endpoint"]),
      ("keepLocalCopy=maybe", ["keepLocalCopy"]),
      ("cloudConfig.checksum=sha1", ["checksum", "md5", "crc32"]),
    ] {
      let r = try cli.run(["backup", "config", "--set", "cloudProvider=aws-s3", assignment])
      #expect(r.status == 64, "\(assignment): \(r.stderr)")
      #expect(r.stderr.split(separator: "\n").count == 1)
      for w in words { #expect(r.stderr.contains(w), "\(assignment): \(r.stderr)") }
      #expect(!r.stderr.contains("abc"))
    }
    let unknown = try cli.run(["backup", "config", "--set", "cloudProvider=aws-s3", "cloudConfig.colour=red"])
    #expect(unknown.status == 64 && unknown.stderr.contains("cloudConfig.prefix"))
    // --cloud without a provider
    let db = cli.work.file("s.db")
    try makeSQLite(db, sampleSQL)
    let none = try cli.run(["backup", "create", "-d", db, "--cloud"])
    #expect(none.status == 64 && none.stderr.contains("cloudProvider=aws-s3"), "\(none.stderr)")
    #expect(try cli.run(["backup", "create", "-d", db, "--parallel", "3"]).status == 64)
  }
}
