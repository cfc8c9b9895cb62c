import Foundation
import TestSupport
import Testing

@Suite struct ConnectionTests {
  @Test func addListTestRemoveWithASQLiteFile() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("app.db")
    try makeSQLite(db, sampleSQL)
    let add = try cli.run(["connection", "add", "app", db, "--test"])
    #expect(add.status == 0, "\(add.stderr)")
    let list = try #require(try cli.run(["connection", "list", "--json"]).json as? [[String: Any]])
    #expect(list.count == 1)
    #expect(list.first?["name"] as? String == "app")
    #expect(list.first?["engine"] as? String == "sqlite")
    #expect(list.first?["url"] as? String == "sqlite://" + db)

    let test = try cli.run(["connection", "test", "app"])
    #expect(test.status == 0, "\(test.stderr)")
    #expect(test.stdout.contains("engine    sqlite"))
    #expect(test.stdout.contains("version   3."))
    #expect(test.stdout.contains("tables    5"))
    #expect(test.stdout.contains("size      "))
    let json = try #require(try cli.run(["connection", "test", "app", "--json"]).json as? [String: Any])
    #expect(json["tables"] as? Int == 5)
    #expect((json["sizeBytes"] as? Int ?? 0) > 0)

    // --database takes the connection name
    let id = try cli.create(["-d", "app"])
    let status = try #require(try cli.run(["backup", "status", id, "--json"]).json as? [String: Any])
    #expect((status["backup"] as? [String: Any])?["database"] as? String == db)

    // and restore -d / list -d too
    let copy = cli.work.file("copy.db")
    #expect(try cli.run(["connection", "add", "copy", "sqlite://" + copy]).status == 0)
    let restored = try cli.run(["backup", "restore", id, "-d", "copy"])
    #expect(restored.status == 0, "\(restored.stderr)")
    #expect(try snapshot(copy) == snapshot(db))
    let listed = try #require(
      try cli.run(["backup", "list", "--json", "-d", "app"]).json as? [[String: Any]])
    #expect(listed.map { $0["id"] as? String } == [id])

    let twice = try cli.run(["connection", "add", "app", db])
    #expect(twice.status == 9)
    let removed = try cli.run(["connection", "remove", "app"])
    #expect(removed.status == 0, "\(removed.stderr)")
    #expect(try cli.run(["connection", "remove", "app"]).status == 2)
    #expect((try cli.run(["connection", "list", "--json"]).json as? [Any])?.count == 1)
  }

  @Test func missingFilesAndUnavailableEnginesGiveClearErrors() throws {
    let cli = AIShellRunner()
    let missing = cli.work.file("missing.db")
    let r = try cli.run(["connection", "test", missing])
    #expect(r.status == 2)
    #expect(r.stderr.contains("missing.db") && r.stderr.contains("does not exist"))
    // --test refuses to store a connection that does not work
    #expect(try cli.run(["connection", "add", "gone", missing, "--test"]).status == 2)
    #expect(!(try cli.run(["connection", "list"]).stdout.contains("gone")))

    // MySQL/MariaDB is available: a server that is not there is a database error naming it
    #expect(try cli.run(["connection", "add", "xmaria", "mariadb://u@127.0.0.1:1/db"]).status == 0)
    let maria = try cli.run(["connection", "test", "xmaria"])
    #expect(maria.status == 5)
    #expect(maria.stderr.contains("cannot connect to MySQL/MariaDB at 127.0.0.1:1/db"), "\(maria.stderr)")
    for url in ["mongodb://localhost/db"] {
      let add = try cli.run(["connection", "add", "x\(url.prefix(5))", url])
      #expect(add.status == 0, "\(add.stderr)")
      let test = try cli.run(["connection", "test", "x\(url.prefix(5))"])
      #expect(test.status == 64)
      #expect(test.stderr.contains("not available in this version"), "\(test.stderr)")
    }
    let bad = try cli.run(["connection", "add", "../evil", "x.db"])
    #expect(bad.status == 64)
    let scheme = try cli.run(["connection", "add", "odd", "redis://localhost"])
    #expect(scheme.status == 64)
  }

  @Test func inlinePasswordsAreNeverStoredInTheConfigOrPrinted() throws {
    let cli = AIShellRunner()
    let secret = "Tr0ub4dor-and-3"
    let add = try cli.run([
      "connection", "add", "prod", "mysql://admin:\(secret)@db.example.com:3306/shop?ssl-mode=REQUIRED",
    ])
    #expect(add.status == 0, "\(add.stderr)")
    #expect(!add.stdout.contains(secret) && !add.stderr.contains(secret))
    let config = String(
      decoding: FileManager.default.contents(atPath: cli.configPath) ?? Data(), as: UTF8.self)
    #expect(config.contains("db.example.com"))
    #expect(!config.contains(secret))
    let secretFile = (cli.configPath as NSString).deletingLastPathComponent + "/secrets/prod.password"
    #expect(
      String(decoding: FileManager.default.contents(atPath: secretFile) ?? Data(), as: UTF8.self) == secret)
    let mode = try FileManager.default.attributesOfItem(atPath: secretFile)[.posixPermissions] as? NSNumber
    #expect(mode?.intValue == 0o600)
    for args in [
      ["backup", "config"], ["backup", "config", "--json"], ["backup", "config", "--get", "connections"],
      ["connection", "list"], ["connection", "list", "--json"], ["connection", "test", "prod"],
    ] {
      let r = try cli.run(args)
      #expect(!r.stdout.contains(secret) && !r.stderr.contains(secret), "\(args)")
    }
    // a URL given directly is redacted in messages too
    let direct = try cli.run(["connection", "test", "mysql://root:\(secret)@localhost/x"])
    #expect(!direct.stderr.contains(secret))
    // secret-looking keys are redacted by --show and --get
    #expect(try cli.run(["backup", "config", "--set", "cloudConfig.sasToken=\(secret)"]).status == 0)
    #expect(!(try cli.run(["backup", "config"]).stdout.contains(secret)))
    #expect(try cli.run(["backup", "config", "--get", "cloudConfig.sasToken"]).stdout == "***\n")
    // a KMS key id names a key, it is not one
    let kms = "arn:aws:kms:us-east-1:111122223333:key/1234abcd"
    let fresh = AIShellRunner()
    let setKMS = try fresh.run([
      "backup", "config", "--set", "cloudProvider=aws-s3", "cloudConfig.bucket=backups-1",
      "cloudConfig.serverSideEncryption=aws:kms", "cloudConfig.kmsKeyId=\(kms)",
    ])
    #expect(setKMS.status == 0, "\(setKMS.stderr)")
    #expect(try fresh.run(["backup", "config", "--get", "cloudConfig.kmsKeyId"]).stdout == kms + "\n")
    // AWS credentials are never stored at all
    let refused = try cli.run(["backup", "config", "--set", "cloudConfig.secretAccessKey=\(secret)"])
    #expect(refused.status == 64 && !refused.stderr.contains(secret))

    // ${ENV_VAR} references are resolved at use time
    let db = cli.work.file("env.db")
    try makeSQLite(db, "CREATE TABLE t(x);")
    #expect(try cli.run(["connection", "add", "byenv", "sqlite://${APP_DB}"]).status == 0)
    let viaEnv = try cli.run(["connection", "test", "byenv"], environment: ["APP_DB": db])
    #expect(viaEnv.status == 0, "\(viaEnv.stderr)")
    let unset = try cli.run(["connection", "test", "byenv"])
    #expect(unset.status == 64)
    #expect(unset.stderr.contains("APP_DB"))
  }
}
