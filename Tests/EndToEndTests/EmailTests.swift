import Foundation
import TestSupport
import Testing

/// Email notifications through the binary: the `notifications.smtp` keys, `schedule --email`, and
/// what a run sends (scripts/smtp-test-server.sh for delivery; see BackupNotifyTests for the
/// client's own cases).
@Suite struct EmailTests {
  func smallDB(_ cli: AIShellRunner) throws -> String {
    let db = cli.work.file("small.db")
    try makeSQLite(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);")
    return db
  }

  func read(_ path: String) -> String {
    String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
  }

  @Test func smtpKeysAreValidatedStoredAndRedacted() throws {
    let cli = AIShellRunner()
    let set = try cli.run([
      "backup", "config", "--set", "notifications.smtp.host=mail.example.com", "notifications.smtp.port=2525",
      "notifications.smtp.tls=tls", "notifications.smtp.username=backup",
      "notifications.smtp.password=s3cret-inline",
      "notifications.smtp.from=backup@example.com",
    ])
    #expect(set.status == 0, "\(set.stderr)")
    // the inline password left the config file for a 0600 secrets file
    let file = read(cli.configPath)
    #expect(!file.contains("s3cret-inline"))
    let secret = cli.work.file("config/secrets/-notifications.smtp.password")
    #expect(read(secret) == "s3cret-inline")
    let mode = try FileManager.default.attributesOfItem(atPath: secret)[.posixPermissions] as? Int
    #expect(mode == 0o600)
    let show = try cli.run(["backup", "config"])
    #expect(show.stdout.contains("notifications.smtp.host = \"mail.example.com\""))
    #expect(show.stdout.contains("notifications.smtp.port = 2525"))
    #expect(show.stdout.contains("notifications.smtp.tls = \"tls\""))
    #expect(show.stdout.contains("notifications.smtp.passwordFile = \"\(secret)\""))
    #expect(!show.stdout.contains("s3cret-inline"))
    // a ${VAR} reference stays in the file and is shown (it names the secret, it is not one);
    // the stored password file goes
    #expect(try cli.run(["backup", "config", "--set", "notifications.smtp.password=${SMTP_PW}"]).status == 0)
    #expect(
      try cli.run(["backup", "config", "--get", "notifications.smtp.password"]).stdout == "${SMTP_PW}\n")
    #expect(!FileManager.default.fileExists(atPath: secret))
    #expect(try cli.run(["backup", "config", "--get", "notifications.smtp.passwordFile"]).stdout == "null\n")
    // an inline password is *** wherever it is shown
    #expect(try cli.run(["backup", "config", "--set", "notifications.smtp.password=again"]).status == 0)
    #expect(
      try cli.run(["backup", "config", "--get", "notifications.smtp"]).stdout.contains("again") == false)

    for (assignment, words) in [
      ("notifications.smtp.tls=ssl", "allowed: starttls, tls, none"),
      ("notifications.smtp.port=0", "port number"),
      ("notifications.smtp.from=not-an-address", "invalid notifications.smtp.from"),
      ("notifications.smtp.host=a b", "invalid notifications.smtp.host"),
      ("notifications.smtp.colour=red", "unknown config key"),
      ("notifications.smtp.caFile=/nonexistent/ca.pem", "cannot read /nonexistent/ca.pem"),
    ] {
      let before = read(cli.configPath)
      let r = try cli.run(["backup", "config", "--set", assignment])
      #expect(r.status != 0, "\(assignment)")
      #expect(r.stderr.contains(words), "\(assignment): \(r.stderr)")
      #expect(read(cli.configPath) == before)
    }
  }

  @Test func scheduleEmailFlagsAreCheckedAndStored() throws {
    let cli = AIShellRunner()
    let db = try smallDB(cli)
    // without notifications.smtp the schedule is refused, naming what to set
    let early = try cli.run([
      "backup", "schedule", "@daily", "-n", "n", "-d", db, "--email", "ops@example.com",
    ])
    #expect(early.status == 64)
    #expect(early.stderr.contains("notifications.smtp.host is not set"), "\(early.stderr)")
    #expect(
      try cli.run([
        "backup", "config", "--set", "notifications.smtp.host=127.0.0.1",
        "notifications.smtp.from=b@example.com",
      ]).status == 0)
    let bad = try cli.run(["backup", "schedule", "@daily", "-n", "n", "-d", db, "--email", "ops"])
    #expect(bad.status == 64)
    #expect(bad.stderr.contains("invalid --email address \"ops\""), "\(bad.stderr)")
    let lone = try cli.run(["backup", "schedule", "@daily", "-n", "n", "-d", db, "--email-on-success"])
    #expect(lone.status == 64)
    let add = try cli.run([
      "backup", "schedule", "@daily", "-n", "n", "-d", db, "--email", "ops@example.com", "--email",
      "dba@example.com", "--email-on-success",
    ])
    #expect(add.status == 0, "\(add.stderr)")
    let list = try #require(try cli.run(["backup", "schedule", "--list", "--json"]).json as? [[String: Any]])
    #expect(list.first?["email"] as? [String] == ["ops@example.com", "dba@example.com"])
    #expect(list.first?["emailOnSuccess"] as? Bool == true)
    #expect(
      try cli.run(["backup", "schedule", "--list"]).stdout.contains(
        "email: ops@example.com, dba@example.com (every run)"))
  }

  @Test func aFailingEmailNeverFailsTheBackup() throws {
    let cli = AIShellRunner()
    let db = try smallDB(cli)
    let port = closedLocalPort()
    #expect(
      try cli.run([
        "backup", "config", "--set", "notifications.smtp.host=127.0.0.1", "notifications.smtp.port=\(port)",
        "notifications.smtp.from=backup@example.com",
      ]).status == 0)
    #expect(
      try cli.run([
        "backup", "schedule", "@daily", "-n", "nightly", "-d", db, "--email", "ops@example.com",
        "--email-on-success",
      ]).status == 0)
    let r = try cli.run(["backup", "schedule", "--run-now", "nightly", "--json"])
    #expect(r.status == 0, "\(r.stderr)")
    let outcome = try #require(r.json as? [String: Any])
    #expect(outcome["status"] as? String == "success")
    #expect(outcome["emailSent"] as? Bool == false)
    #expect(
      r.stderr.contains(
        "email for nightly to ops@example.com not sent: connection refused by 127.0.0.1:\(port);"),
      "\(r.stderr)")
    let id = try #require(outcome["backupId"] as? String)
    let list = try #require(try cli.run(["backup", "list", "--json"]).json as? [[String: Any]])
    #expect(list.contains { $0["id"] as? String == id && $0["status"] as? String == "complete" })
    let schedules = try #require(
      try cli.run(["backup", "schedule", "--list", "--json"]).json as? [[String: Any]])
    let last = try #require(schedules.first?["lastRun"] as? [String: Any])
    #expect(last["status"] as? String == "success")
    #expect(last["id"] as? String == id)
  }

  @Test func runsMailSuccessOnRequestAndFailureAlways() throws {
    guard let server = SMTPTestServer.fromEnvironment() else { return }
    let cli = AIShellRunner()
    let db = try smallDB(cli)
    let name = "mail-\(UUID().uuidString.prefix(8).lowercased())"
    #expect(
      try cli.run([
        "backup", "config", "--set", "notifications.smtp.host=\(server.host)",
        "notifications.smtp.port=\(server.port)",
        "notifications.smtp.tls=starttls", "notifications.smtp.username=\(server.user)",
        "notifications.smtp.password=${AI_SHELL_SMTP_PASSWORD}", "notifications.smtp.from=backup@example.com",
        "notifications.smtp.caFile=\(server.caFile)",
      ]).status == 0)
    let env = ["AI_SHELL_SMTP_PASSWORD": server.password]

    // success without --email-on-success: no message
    #expect(
      try cli.run(["backup", "schedule", "@daily", "-n", name, "-d", db, "--email", "ops@example.com"]).status
        == 0)
    let quiet = try cli.run(["backup", "schedule", "--run-now", name, "--json"], environment: env)
    #expect(quiet.status == 0, "\(quiet.stderr)")
    #expect((quiet.json as? [String: Any])?["emailSent"] == nil)

    // success with it: subject and body name the schedule, database, id, size and duration
    #expect(
      try cli.run([
        "backup", "schedule", "@daily", "-n", name, "-d", db, "--email", "ops@example.com",
        "--email-on-success",
      ]).status == 0)
    let ok = try cli.run(["backup", "schedule", "--run-now", name, "--json"], environment: env)
    #expect(ok.status == 0, "\(ok.stderr)")
    let outcome = try #require(ok.json as? [String: Any])
    #expect(outcome["emailSent"] as? Bool == true, "\(ok.stderr)")
    let id = try #require(outcome["backupId"] as? String)
    let size = try #require(outcome["sizeBytes"] as? Int)
    let mail = try #require(try server.mail(subjectContaining: "schedule \(name), \(id)"))
    #expect(mail.subject.hasPrefix("[ai-shell] backup OK: schedule \(name), \(id) ("))
    #expect(mail.body.contains("Schedule:  \(name)\n"), "\(mail.body)")
    #expect(mail.body.contains("Database:  \(db)\n"))
    #expect(mail.body.contains("Status:    success\n"))
    #expect(mail.body.contains("Backup id: \(id)\n"))
    #expect(mail.body.contains("(\(size) bytes)\n"))
    #expect(mail.body.contains("Duration:  "))
    #expect(mail.to == "ops@example.com")

    // a failure is always mailed, with the error
    try FileManager.default.removeItem(atPath: db)
    let failed = try cli.run(["backup", "schedule", "--run-now", name, "--json"], environment: env)
    #expect(failed.status != 0)
    let failMail = try #require(try server.mail(subjectContaining: "backup FAILED: schedule \(name),"))
    #expect(failMail.body.contains("Status:    failed\n"))
    #expect(failMail.body.contains("Backup id: -\n"))
    #expect(failMail.body.contains("Error:     "))
    #expect(failMail.body.contains(db))
    // the password was never in any output
    for text in [quiet.stderr, ok.stderr, ok.stdout, failed.stderr, read(cli.configPath)] {
      #expect(!text.contains(server.password))
    }
  }
}
