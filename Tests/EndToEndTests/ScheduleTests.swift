import Foundation
import TestSupport
import Testing

/// `backup schedule`, `backup scheduler` and `backup prune` through the binary.
@Suite struct ScheduleTests {
  func read(_ path: String) -> String {
    String(decoding: FileManager.default.contents(atPath: path) ?? Data(), as: UTF8.self)
  }

  func smallDB(_ cli: AIShellRunner) throws -> String {
    let db = cli.work.file("small.db")
    if !FileManager.default.fileExists(atPath: db) {
      try makeSQLite(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2);")
    }
    return db
  }

  func complete(_ cli: AIShellRunner) throws -> [[String: Any]] {
    let list = try #require(try cli.run(["backup", "list", "--json"]).json as? [[String: Any]])
    return list.filter { $0["status"] as? String == "complete" }
  }

  /// Starts `ai-shell args` in the background with the runner's config and backup dir; stderr
  /// goes to `stderrPath`.
  func spawn(_ cli: AIShellRunner, _ args: [String], stderrPath: String) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: AIShellRunner.binary)
    p.arguments = args
    var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("AI_SHELL_") }
    env["AI_SHELL_CONFIG"] = cli.configPath
    env["AI_SHELL_BACKUP_DIR"] = cli.backupDir
    p.environment = env
    _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
    p.standardError = FileHandle(forWritingAtPath: stderrPath)
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    return p
  }

  func waitFor(seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
      if condition() { return true }
      usleep(50_000)
    }
    return condition()
  }

  @Test func addListDisableEnableRemove() throws {
    let cli = AIShellRunner()
    let db = try smallDB(cli)
    let add = try cli.run([
      "backup", "schedule", "30 2 * * mon-fri", "-n", "nightly", "-d", db, "--keep-last", "3",
      "--keep-daily", "7", "--timezone", "Europe/Berlin", "-c", "gzip", "--verify",
    ])
    #expect(add.status == 0, "\(add.stderr)")
    #expect(add.stdout.contains("added schedule nightly: 30 2 * * MON-FRI (Europe/Berlin)"))
    let list = try #require(try cli.run(["backup", "schedule", "--list", "--json"]).json as? [[String: Any]])
    try #require(list.count == 1)
    #expect(list[0]["name"] as? String == "nightly")
    #expect(list[0]["cron"] as? String == "30 2 * * MON-FRI")
    #expect(list[0]["timezone"] as? String == "Europe/Berlin")
    #expect(list[0]["keepLast"] as? Int == 3)
    #expect(list[0]["compression"] as? String == "gzip")
    #expect(list[0]["nextRun"] is String)
    #expect((list[0]["nextRunText"] as? String)?.contains("UTC)") == true)
    #expect(list[0]["lastRun"] == nil)
    let text = try cli.run(["backup", "schedule", "--list"])
    #expect(text.stdout.contains("nightly: 30 2 * * MON-FRI Europe/Berlin"))
    #expect(text.stdout.contains("last run: never"))
    // the schedule is in the config file, so config --show lists it
    let show = try cli.run(["backup", "config"])
    #expect(show.stdout.contains("schedules.nightly.cron = \"30 2 * * MON-FRI\""))
    let cfg = try #require(try cli.run(["backup", "config", "--json"]).json as? [String: Any])
    #expect((cfg["schedules"] as? [String: Any])?["nightly"] != nil)

    #expect(try cli.run(["backup", "schedule", "--disable", "nightly"]).status == 0)
    let disabled = try #require(
      try cli.run(["backup", "schedule", "--list", "--json"]).json as? [[String: Any]])
    try #require(disabled.count == 1)
    #expect(disabled[0]["enabled"] as? Bool == false)
    #expect(disabled[0]["nextRun"] == nil)
    #expect(try cli.run(["backup", "schedule", "--enable", "nightly"]).status == 0)
    let enabled = try #require(
      try cli.run(["backup", "schedule", "--list", "--json"]).json as? [[String: Any]])
    try #require(enabled.count == 1)
    #expect(enabled[0]["enabled"] as? Bool == true)
    // replacing keeps one schedule
    let replace = try cli.run(["backup", "schedule", "@daily", "-n", "nightly", "-d", db])
    #expect(replace.stdout.contains("replaced schedule nightly: @daily (UTC)"))
    #expect(try cli.run(["backup", "schedule", "--remove", "nightly"]).status == 0)
    #expect(try cli.run(["backup", "schedule", "--remove", "nightly"]).status == 2)
    #expect(try cli.run(["backup", "schedule", "--enable", "nope"]).status == 2)
    #expect((try cli.run(["backup", "schedule", "--list", "--json"]).json as? [Any])?.isEmpty == true)
  }

  @Test func invalidSchedulesAreUsageErrors() throws {
    let cli = AIShellRunner()
    let db = try smallDB(cli)
    for (args, words) in [
      (["60 * * * *", "-n", "a", "-d", db], ["minute field \"60\"", "out of range"]),
      (["* * * *", "-n", "a", "-d", db], ["4 fields"]),
      (["* * * * *", "-n", "a", "-d", db, "--timezone", "Mars/Olympus"], ["Mars/Olympus"]),
      (["* * * * *", "-n", ".hidden", "-d", db], ["invalid schedule name"]),
      (["* * * * *", "-n", "a", "-d", db, "--keep-last", "-1"], ["--keep-last"]),
      (["* * * * *", "-n", "a", "-d", db, "--webhook", "ftp://x"], ["webhook"]),
      (["* * * * *", "-n", "a", "-d", db, "--encrypt"], ["encryption.recipients"]),
      (["* * * * *", "-n", "a", "-d", db, "--email", "me@example.com"], ["--email"]),
      (["* * * * *", "-n", "a"], ["-d/--database"]),
      (["--list", "--remove", "a"], ["exactly one"]),
    ] {
      let r = try cli.run(["backup", "schedule"] + args)
      #expect(r.status == 64, "\(args): \(r.status) \(r.stderr)")
      for w in words { #expect(r.stderr.contains(w), "\(args): \(r.stderr)") }
    }
    #expect(!FileManager.default.fileExists(atPath: cli.configPath))
    // a hand-edited config is validated too
    try FileManager.default.createDirectory(
      atPath: (cli.configPath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try Data(#"{"schedules":{"a":{"cron":"* * 32 * *","database":"x.db"}}}"#.utf8).write(
      to: URL(fileURLWithPath: cli.configPath))
    let bad = try cli.run(["backup", "schedule", "--list"])
    #expect(bad.status == 64)
    #expect(bad.stderr.contains("schedules.a.cron"))
    try Data(#"{"schedules":{"a":{"cron":"@daily","database":"x.db","keepWeekly":-2}}}"#.utf8).write(
      to: URL(fileURLWithPath: cli.configPath))
    #expect(try cli.run(["backup", "schedule", "--list"]).stderr.contains("schedules.a.keepWeekly"))
    try Data(#"{"schedules":{"a":{"cron":"@daily","database":"x.db","colour":1}}}"#.utf8).write(
      to: URL(fileURLWithPath: cli.configPath))
    #expect(try cli.run(["backup", "schedule", "--list"]).stderr.contains("schedules.<name>.colour"))
    #expect(try cli.run(["backup", "config", "--set", "schedules.a.cron=@daily"]).status == 64)
  }

  @Test func runNowAppliesRetentionAndRecordsTheLastRun() throws {
    let cli = AIShellRunner()
    let db = try smallDB(cli)
    #expect(
      try cli.run(["backup", "schedule", "@daily", "-n", "hourly", "-d", db, "--keep-last", "2"]).status == 0)
    // a backup of no schedule is never pruned
    let manual = try cli.create(["-d", db])
    var ids: [String] = []
    for _ in 0..<3 {
      let r = try cli.run(["backup", "schedule", "--run-now", "hourly"])
      #expect(r.status == 0, "\(r.stderr)")
      ids.append(r.lastLine)
      usleep(1_100_000)  // distinct creation seconds
    }
    let left = Set(try complete(cli).compactMap { $0["id"] as? String })
    #expect(left == Set([manual, ids[1], ids[2]]))
    #expect(try complete(cli).filter { $0["name"] as? String == "hourly" }.count == 2)
    let list = try #require(try cli.run(["backup", "schedule", "--list", "--json"]).json as? [[String: Any]])
    let last = try #require(list.first?["lastRun"] as? [String: Any])
    #expect(last["id"] as? String == ids[2])
    #expect(last["status"] as? String == "success")

    // prune: keep-last 1 now; dry run removes nothing
    #expect(
      try cli.run(["backup", "schedule", "@daily", "-n", "hourly", "-d", db, "--keep-last", "1"]).status == 0)
    let dry = try cli.run(["backup", "prune", "--dry-run"])
    #expect(dry.status == 0)
    #expect(dry.stdout.contains("would remove \(ids[1])"))
    #expect(try complete(cli).count == 3)
    let pruneJSON = try #require(
      try cli.run(["backup", "prune", "--schedule", "hourly", "--json"]).json as? [[String: Any]])
    let removed = try #require(pruneJSON.first?["removed"] as? [[String: Any]])
    #expect(removed.map { $0["id"] as? String } == [ids[1]])
    #expect(Set(try complete(cli).compactMap { $0["id"] as? String }) == Set([manual, ids[2]]))
    #expect(try cli.run(["backup", "prune", "--schedule", "nope"]).status == 2)

    // a failed run deletes nothing and is recorded
    try FileManager.default.removeItem(atPath: db)
    let failed = try cli.run(["backup", "schedule", "--run-now", "hourly"])
    #expect(failed.status != 0)
    #expect(try complete(cli).count == 2)
    let after = try #require(
      try cli.run(["backup", "schedule", "--list", "--json"]).json as? [[String: Any]])
    let lastFailed = try #require(after.first?["lastRun"] as? [String: Any])
    #expect(lastFailed["status"] as? String == "failed")
    #expect(lastFailed["error"] is String)
  }

  @Test func printCrontabAndSystemd() throws {
    let cli = AIShellRunner()
    let db = try smallDB(cli)
    #expect(
      try cli.run([
        "backup", "schedule", "*/15 2-4 * jan,jul 1-5", "-n", "work", "-d", db, "--timezone",
        "America/New_York",
      ]).status == 0)
    let cron = try cli.run(["backup", "schedule", "--print-crontab", "work"])
    #expect(cron.status == 0)
    #expect(cron.stdout.contains("CRON_TZ=America/New_York\n"))
    #expect(cron.stdout.contains("*/15 2-4 * JAN,JUL 1-5 "))
    #expect(cron.stdout.contains(" backup schedule --run-now work --config \(cli.configPath)"))
    let unit = try cli.run(["backup", "schedule", "--print-systemd", "work"])
    #expect(unit.status == 0, "\(unit.stderr)")
    #expect(unit.stdout.contains("# file: ai-shell-backup-work.service"))
    #expect(unit.stdout.contains("# file: ai-shell-backup-work.timer"))
    #expect(unit.stdout.contains("Type=oneshot"))
    #expect(unit.stdout.contains("backup schedule --run-now work"))
    #expect(
      unit.stdout.contains("OnCalendar=Mon,Tue,Wed,Thu,Fri *-1,7-* 02,03,04:00,15,30,45:00 America/New_York"))
    #expect(unit.stdout.contains("Persistent=true"))
    if let analyze = try? runProcess("systemd-analyze", ["calendar", "Mon,Tue *-1,7-* 02,03:00,15:00 UTC"]),
      analyze.status == 0
    {
      // systemd accepts the syntax (when it is installed)
      #expect(String(decoding: analyze.stdout, as: UTF8.self).contains("Next elapse"))
    }
    // day-of-month OR day-of-week cannot be said in OnCalendar
    #expect(try cli.run(["backup", "schedule", "0 0 13 * FRI", "-n", "friday13", "-d", db]).status == 0)
    let bad = try cli.run(["backup", "schedule", "--print-systemd", "friday13"])
    #expect(bad.status == 64)
    #expect(bad.stderr.contains("day-of-month and day-of-week"))
    #expect(try cli.run(["backup", "schedule", "--print-crontab", "friday13"]).status == 0)
    #expect(try cli.run(["backup", "schedule", "--print-crontab", "nope"]).status == 2)
  }

  /// The one test on the real clock: a `* * * * *` schedule fires within a minute.
  @Test func schedulerRunsADueScheduleAndStopsOnSIGTERM() throws {
    let cli = AIShellRunner()
    let db = try smallDB(cli)
    #expect(try cli.run(["backup", "schedule", "* * * * *", "-n", "minutely", "-d", db]).status == 0)
    let log = cli.work.file("scheduler.log")
    let p = try spawn(cli, ["backup", "scheduler"], stderrPath: log)
    let ran = waitFor(seconds: 120) { (try? complete(cli).count) ?? 0 >= 1 }
    kill(p.processIdentifier, SIGTERM)
    p.waitUntilExit()
    #expect(ran, "no backup within 75 s: \(read(log))")
    #expect(p.terminationStatus == 0, "\(read(log))")
    let text = read(log)
    for line in [
      "scheduler started", "next run", "run minutely started", "run minutely succeeded", "SIGTERM",
      "scheduler stopped",
    ] {
      #expect(text.contains(line), "\(line) missing from: \(text)")
    }
    #expect(try complete(cli).first?["name"] as? String == "minutely")
  }

  @Test func oneRunAtATimeAcrossProcesses() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("big.db")
    try makeBigDatabase(db, rows: 200_000)
    #expect(try cli.run(["backup", "schedule", "@yearly", "-n", "big", "-d", db, "-c", "bzip2"]).status == 0)
    // a lock held by another process: run-now refuses, the scheduler skips the slot
    let holder = Process()
    holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    try FileManager.default.createDirectory(atPath: cli.backupDir, withIntermediateDirectories: true)
    holder.arguments = [
      "python3", "-c",
      "import fcntl,sys,time\nf=open(sys.argv[1],'a')\nfcntl.flock(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep(60)",
      cli.backupDir + "/.schedule-big.lock",
    ]
    let out = Pipe()
    holder.standardOutput = out
    try holder.run()
    _ = out.fileHandleForReading.availableData  // "locked"
    let refused = try cli.run(["backup", "schedule", "--run-now", "big"])
    #expect(refused.status == 9, "\(refused.stderr)")
    #expect(refused.stderr.contains("already running"))
    let listed = try #require(
      try cli.run(["backup", "schedule", "--list", "--json"]).json as? [[String: Any]])
    #expect(listed.first?["running"] as? Bool == true)
    kill(holder.processIdentifier, SIGKILL)
    holder.waitUntilExit()
    // the holder died: the kernel released its lock, nothing stale remains
    // two concurrent run-nows: exactly one runs
    let a = try spawn(cli, ["backup", "schedule", "--run-now", "big"], stderrPath: cli.work.file("a.log"))
    let b = try spawn(cli, ["backup", "schedule", "--run-now", "big"], stderrPath: cli.work.file("b.log"))
    a.waitUntilExit()
    b.waitUntilExit()
    let statuses = [a.terminationStatus, b.terminationStatus].sorted()
    #expect(statuses == [0, 9], "\(read(cli.work.file("a.log"))) \(read(cli.work.file("b.log")))")
    #expect(try complete(cli).count == 1)

    // two schedulers catching up the same missed slot: one run
    let state = cli.backupDir + "/.schedules-state.json"
    try Data(#"{"big":{"at":"2020-01-01T00:00:00Z","status":"success"}}"#.utf8).write(
      to: URL(fileURLWithPath: state))
    let s1 = try spawn(cli, ["backup", "scheduler"], stderrPath: cli.work.file("s1.log"))
    let s2 = try spawn(cli, ["backup", "scheduler"], stderrPath: cli.work.file("s2.log"))
    // whichever scheduler gets the lock runs the missed slot; the other skips it, or (when it
    // starts after the run has ended) finds nothing missed: never a second run
    let ran = waitFor(seconds: 90) {
      (read(cli.work.file("s1.log")) + read(cli.work.file("s2.log"))).contains("run big succeeded")
    }
    usleep(2_000_000)
    kill(s1.processIdentifier, SIGTERM)
    kill(s2.processIdentifier, SIGTERM)
    s1.waitUntilExit()
    s2.waitUntilExit()
    let logs = read(cli.work.file("s1.log")) + read(cli.work.file("s2.log"))
    #expect(ran, "\(logs)")
    #expect(logs.components(separatedBy: "run big started").count - 1 == 1, "\(logs)")
    #expect(try complete(cli).count == 2)
  }

  @Test func noCatchUpWaitsForTheNextSlot() throws {
    let cli = AIShellRunner()
    let db = try smallDB(cli)
    #expect(try cli.run(["backup", "schedule", "@yearly", "-n", "yearly", "-d", db]).status == 0)
    try FileManager.default.createDirectory(atPath: cli.backupDir, withIntermediateDirectories: true)
    try Data(#"{"yearly":{"at":"2020-01-01T00:00:00Z","status":"success"}}"#.utf8).write(
      to: URL(fileURLWithPath: cli.backupDir + "/.schedules-state.json"))
    let log = cli.work.file("s.log")
    let p = try spawn(cli, ["backup", "scheduler", "--no-catch-up"], stderrPath: log)
    #expect(waitFor(seconds: 60) { read(log).contains("next run") }, "\(read(log))")
    usleep(1_000_000)
    kill(p.processIdentifier, SIGINT)
    p.waitUntilExit()
    #expect(p.terminationStatus == 0, "\(read(log))")
    #expect(!read(log).contains("catching up"))
    #expect(read(log).contains("received SIGINT"))
    #expect(try complete(cli).isEmpty)
  }

  @Test func sigtermDuringARun() throws {
    let cli = AIShellRunner()
    let db = cli.work.file("big.db")
    try makeBigDatabase(db, rows: 400_000)
    #expect(try cli.run(["backup", "schedule", "@yearly", "-n", "big", "-d", db, "-c", "bzip2"]).status == 0)
    let state = cli.backupDir + "/.schedules-state.json"
    func missedRun() throws {
      try FileManager.default.createDirectory(atPath: cli.backupDir, withIntermediateDirectories: true)
      try Data(#"{"big":{"at":"2020-01-01T00:00:00Z","status":"success"}}"#.utf8).write(
        to: URL(fileURLWithPath: state))
    }
    func dataFileStarted() -> Bool { cli.backupFiles().contains { $0.hasSuffix(".bz2") } }

    // no time to finish: the run is marked failed, exit 1, nothing listed as complete
    try missedRun()
    let log1 = cli.work.file("s1.log")
    let s1 = try spawn(cli, ["backup", "scheduler", "--shutdown-timeout", "0"], stderrPath: log1)
    #expect(waitFor(seconds: 60, dataFileStarted), "\(read(log1))")
    kill(s1.processIdentifier, SIGTERM)
    s1.waitUntilExit()
    #expect(s1.terminationStatus == 1, "\(read(log1))")
    #expect(read(log1).contains("marked failed"))
    #expect(try complete(cli).isEmpty)
    let list = try #require(try cli.run(["backup", "schedule", "--list", "--json"]).json as? [[String: Any]])
    let last = try #require(list.first?["lastRun"] as? [String: Any])
    #expect(last["status"] as? String == "failed")
    #expect((last["error"] as? String)?.contains("interrupted") == true)

    // time to finish: the backup completes, exit 0
    try missedRun()
    let log2 = cli.work.file("s2.log")
    let s2 = try spawn(cli, ["backup", "scheduler", "--shutdown-timeout", "120"], stderrPath: log2)
    #expect(waitFor(seconds: 60) { read(log2).contains("run big started") }, "\(read(log2))")
    kill(s2.processIdentifier, SIGTERM)
    s2.waitUntilExit()
    #expect(s2.terminationStatus == 0, "\(read(log2))")
    #expect(read(log2).contains("run big succeeded"))
    let done = try complete(cli)
    #expect(done.count == 1)
    #expect(done.first?["name"] as? String == "big")
  }

  @Test func webhookIsDeliveredAndAFailingOneDoesNotFailTheRun() throws {
    let cli = AIShellRunner()
    let db = try smallDB(cli)
    let bodies = cli.work.file("bodies.jsonl")
    let server = Process()
    server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    server.arguments = [
      "python3", "-c",
      """
      import http.server, sys
      class H(http.server.BaseHTTPRequestHandler):
          def do_POST(self):
              n = int(self.headers.get('Content-Length', 0))
              body = self.rfile.read(n)
              with open(sys.argv[1], 'ab') as f:
                  f.write(body + b'\\n')
              self.send_response(204)
              self.end_headers()
          def log_message(self, *a):
              pass
      s = http.server.HTTPServer(('127.0.0.1', 0), H)
      print(s.server_address[1], flush=True)
      s.serve_forever()
      """,
      bodies,
    ]
    let out = Pipe()
    server.standardOutput = out
    try server.run()
    // SIGKILL: children of the test runner inherit its blocked SIGTERM
    defer {
      kill(server.processIdentifier, SIGKILL)
      server.waitUntilExit()
    }
    let portLine = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
    let port = try #require(Int(portLine.trimmingCharacters(in: .whitespacesAndNewlines)))
    #expect(
      try cli.run([
        "backup", "schedule", "@daily", "-n", "hooked", "-d", db, "--webhook",
        "http://127.0.0.1:\(port)/hook",
      ]).status == 0)
    let r = try cli.run(["backup", "schedule", "--run-now", "hooked"])
    #expect(r.status == 0, "\(r.stderr)")
    #expect(r.stderr.contains("webhook for hooked delivered"))
    let line = try #require(read(bodies).split(separator: "\n").first)
    let body = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    #expect(body["event"] as? String == "backup.succeeded")
    #expect(body["schedule"] as? String == "hooked")
    #expect(body["database"] as? String == db)
    #expect(body["backupId"] as? String == r.lastLine)
    #expect((body["sizeBytes"] as? Int ?? 0) > 0)
    #expect(body["durationSeconds"] is Double || body["durationSeconds"] is Int)
    #expect(body["status"] as? String == "success")
    #expect(body["error"] is NSNull)
    #expect(body["at"] is String)

    // a failed run is notified too
    #expect(
      try cli.run([
        "backup", "schedule", "@daily", "-n", "hooked", "-d", cli.work.file("missing.db"), "--webhook",
        "http://127.0.0.1:\(port)/hook",
      ]).status == 0)
    #expect(try cli.run(["backup", "schedule", "--run-now", "hooked"]).status != 0)
    let failed = try #require(read(bodies).split(separator: "\n").last)
    let fbody = try #require(try JSONSerialization.jsonObject(with: Data(failed.utf8)) as? [String: Any])
    #expect(fbody["event"] as? String == "backup.failed")
    #expect(fbody["error"] is String)

    // nothing listens: 4 attempts logged, the backup still succeeds
    kill(server.processIdentifier, SIGKILL)
    server.waitUntilExit()
    #expect(
      try cli.run([
        "backup", "schedule", "@daily", "-n", "hooked", "-d", db, "--webhook",
        "http://127.0.0.1:\(port)/hook",
      ]).status == 0)
    let down = try cli.run(["backup", "schedule", "--run-now", "hooked"])
    #expect(down.status == 0, "\(down.stderr)")
    #expect(down.stderr.contains("attempt 4 of 4 failed"))
    #expect(try complete(cli).count == 2)
  }
}
