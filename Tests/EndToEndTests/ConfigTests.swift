import Foundation
import TestSupport
import Testing

@Suite struct ConfigTests {
  func fileMode(_ path: String) throws -> Int {
    let attrs = try FileManager.default.attributesOfItem(atPath: path)
    return (attrs[.posixPermissions] as? NSNumber)?.intValue ?? -1
  }

  func read(_ path: String) -> String {
    String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
  }

  @Test func setGetShowAndFileMode() throws {
    let cli = AIShellRunner()
    let show = try cli.run(["backup", "config", "--json"])
    #expect(show.status == 0, "\(show.stderr)")
    let defaults = try #require(show.json as? [String: Any])
    #expect(defaults["retentionDays"] as? Int == 30)
    #expect(defaults["maxBackups"] as? Int == 50)
    #expect(defaults["cloudProvider"] as? String == "none")
    #expect(defaults["compression"] as? String == "zstd")
    #expect(defaults["format"] as? String == "sql")
    #expect(!FileManager.default.fileExists(atPath: cli.configPath))

    let set = try cli.run([
      "backup", "config", "--set", "retentionDays=7", "cloudProvider=aws-s3", "cloudConfig.bucket=my-bucket",
      "cloudConfig.forcePathStyle=true", "cloudConfig.parallel=4", "compression=gzip",
    ])
    #expect(set.status == 0, "\(set.stderr)")
    #expect(try fileMode(cli.configPath) == 0o600)
    #expect(try fileMode((cli.configPath as NSString).deletingLastPathComponent) == 0o700)
    #expect(try cli.run(["backup", "config", "--get", "retentionDays"]).stdout == "7\n")
    #expect(try cli.run(["backup", "config", "--get", "cloudConfig.bucket"]).stdout == "my-bucket\n")
    let cloud = try #require(
      try cli.run(["backup", "config", "--get", "cloudConfig"]).json as? [String: Any])
    #expect(cloud["forcePathStyle"] as? Bool == true)
    #expect(cloud["parallel"] as? Int == 4)
    let text = try cli.run(["backup", "config"])
    #expect(text.stdout.contains("cloudProvider = \"aws-s3\""))

    let unknownGet = try cli.run(["backup", "config", "--get", "nope"])
    #expect(unknownGet.status == 64)
  }

  @Test func invalidSetsLeaveTheFileUnchanged() throws {
    let cli = AIShellRunner()
    #expect(try cli.run(["backup", "config", "--set", "maxBackups=9"]).status == 0)
    let before = read(cli.configPath)
    for (assignment, words) in [
      ("colour=blue", ["unknown config key", "colour", "retentionDays"]),
      ("compression=lz4", ["compression", "gzip, bzip2, zstd, none"]),
      ("cloudProvider=dropbox", ["cloudProvider", "aws-s3"]),
      ("retentionDays=-1", ["retentionDays", "whole number"]),
      ("lockTimeoutSeconds=soon", ["lockTimeoutSeconds"]),
      ("encryption.recipients=ssh-rsa AAAA", ["encryption.recipients", "age1"]),
    ] {
      // a valid assignment first: nothing of the batch may be saved
      let r = try cli.run(["backup", "config", "--set", "maxBackups=1", assignment])
      #expect(r.status == 64, "\(assignment): \(r.stderr)")
      #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
      for w in words { #expect(r.stderr.contains(w), "\(assignment): \(r.stderr)") }
      #expect(read(cli.configPath) == before)
    }
  }

  @Test func editWithAScriptedEditor() throws {
    let cli = AIShellRunner()
    #expect(try cli.run(["backup", "config", "--set", "retentionDays=5"]).status == 0)
    let good = try cli.run(
      ["backup", "config", "--edit"],
      environment: ["EDITOR": "sed -i s/Days\"[^0-9]*5/Days\":12/", "VISUAL": ""])
    #expect(good.status == 0, "\(good.stderr)")
    #expect(try cli.run(["backup", "config", "--get", "retentionDays"]).stdout == "12\n")
    #expect(try fileMode(cli.configPath) == 0o600)

    // an editor script that writes an invalid value: rejected, old file kept
    let script = cli.work.file("bad-editor.sh")
    try "#!/bin/sh\nsed -i 's/\"zstd\"/\"lz4\"/' \"$1\"\n".write(
      toFile: script, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script)
    let before = read(cli.configPath)
    let bad = try cli.run(["backup", "config", "--edit"], environment: ["VISUAL": script])
    #expect(bad.status == 64, "\(bad.stderr)")
    #expect(bad.stderr.contains("compression"))
    #expect(read(cli.configPath) == before)
    // not JSON at all
    let broken = cli.work.file("broken-editor.sh")
    try "#!/bin/sh\necho '{ nope' > \"$1\"\n".write(toFile: broken, atomically: true, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: broken)
    let notJSON = try cli.run(["backup", "config", "--edit"], environment: ["VISUAL": broken])
    #expect(notJSON.status == 64)
    #expect(read(cli.configPath) == before)
    // no temp copies left behind
    let dir = (cli.configPath as NSString).deletingLastPathComponent
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["config.json"])
  }

  @Test func resetNeedsForceWithoutATerminal() throws {
    let cli = AIShellRunner()
    #expect(try cli.run(["backup", "config", "--set", "retentionDays=3"]).status == 0)
    let refused = try cli.run(["backup", "config", "--reset"])
    #expect(refused.status == 9)
    #expect(try cli.run(["backup", "config", "--get", "retentionDays"]).stdout == "3\n")
    let reset = try cli.run(["backup", "config", "--reset", "--force"])
    #expect(reset.status == 0, "\(reset.stderr)")
    #expect(try cli.run(["backup", "config", "--get", "retentionDays"]).stdout == "30\n")
  }

  @Test func precedenceFlagBeatsEnvironmentBeatsConfig() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("p.db")
    try makeSQLite(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
    let fromConfig = cli.work.file("from-config")
    let fromEnv = cli.work.file("from-env")
    let fromFlag = cli.work.file("from-flag")
    #expect(try cli.run(["backup", "config", "--set", "backupDir=\(fromConfig)", "format=json"]).status == 0)

    func createdFile(_ args: [String], env: [String: String]) throws -> String {
      let r = try cli.run(["backup", "create", "-d", db, "--json"] + args, environment: env)
      #expect(r.status == 0, "\(r.stderr)")
      return (r.json as? [String: Any])?["file"] as? String ?? ""
    }
    let noEnv = ["AI_SHELL_BACKUP_DIR": ""]
    #expect(try createdFile([], env: noEnv).hasPrefix(fromConfig + "/"))
    #expect(try createdFile([], env: ["AI_SHELL_BACKUP_DIR": fromEnv]).hasPrefix(fromEnv + "/"))
    #expect(
      try createdFile(["--backup-dir", fromFlag], env: ["AI_SHELL_BACKUP_DIR": fromEnv]).hasPrefix(
        fromFlag + "/"))
    // config format/compression apply unless a flag is given
    #expect(try createdFile([], env: noEnv).hasSuffix(".ndjson.zst"))
    #expect(try createdFile(["--format", "sql", "-c", "gzip"], env: noEnv).hasSuffix(".sql.gz"))

    // --config beats AI_SHELL_CONFIG
    let other = cli.work.file("other/config.json")
    #expect(try cli.run(["backup", "config", "--config", other, "--set", "maxBackups=2"]).status == 0)
    #expect(try cli.run(["backup", "config", "--config", other, "--get", "maxBackups"]).stdout == "2\n")
    #expect(try cli.run(["backup", "config", "--get", "maxBackups"]).stdout == "50\n")
    // XDG_CONFIG_HOME when nothing else is given
    let xdg = cli.work.file("xdg")
    let viaXDG = try cli.run(
      ["backup", "config", "--set", "maxBackups=4"],
      environment: ["AI_SHELL_CONFIG": "", "XDG_CONFIG_HOME": xdg])
    #expect(viaXDG.status == 0, "\(viaXDG.stderr)")
    #expect(FileManager.default.fileExists(atPath: xdg + "/ai-shell/config.json"))

    // a broken config file stops commands with a clear error
    try "{ \"retentionDays\": \"many\" }".write(toFile: cli.configPath, atomically: true, encoding: .utf8)
    let broken = try cli.run(["backup", "list"])
    #expect(broken.status == 64)
    #expect(broken.stderr.contains("retentionDays"))
  }
}
