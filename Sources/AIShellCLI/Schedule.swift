import ArgumentParser
import BackupCore
import BackupModel
import Foundation
import Logging

extension Backup {
  struct ScheduleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "schedule",
      abstract: "Add, list, change, run or export backup schedules (docs/SCHEDULES.md).",
      discussion: """
        `schedule CRON -n NAME -d DB [options]` adds the schedule NAME or replaces it. The other \
        actions take a schedule name: --remove, --enable, --disable, --run-now (runs the job in the \
        foreground, with retention, webhook and email, exactly as the scheduler does), \
        --print-systemd and --print-crontab. --list shows every schedule with its next run (in its \
        time zone and UTC) and its last result. Schedules are kept in the config file under \
        `schedules`. --email mails a failed run (and with --email-on-success every run) through \
        the notifications.smtp settings (docs/SCHEDULES.md).
        """)

    @Argument(help: "A cron expression (5 fields or @daily etc.; quote it).")
    var cron: String?

    @Option(name: .shortAndLong, help: "The schedule's name (letters, digits, -, _, .).")
    var name: String?

    @Option(name: .shortAndLong, help: "The database: a connection name, a URL or a SQLite path.")
    var database: String?

    @Option(help: ArgumentHelp("Keep backups younger than this many days.", valueName: "days"))
    var retention: Int?

    @Option(help: ArgumentHelp("Keep the newest N backups.", valueName: "n"))
    var keepLast: Int?

    @Option(help: ArgumentHelp("Keep the newest backup of each of the last N days.", valueName: "n"))
    var keepDaily: Int?

    @Option(help: ArgumentHelp("Keep the newest backup of each of the last N weeks.", valueName: "n"))
    var keepWeekly: Int?

    @Option(help: ArgumentHelp("Keep the newest backup of each of the last N months.", valueName: "n"))
    var keepMonthly: Int?

    @Option(help: ArgumentHelp("POST a JSON notification to this URL after each run.", valueName: "url"))
    var webhook: String?

    @Option(
      help: ArgumentHelp(
        "Email this address when a run fails (repeatable; through notifications.smtp).", valueName: "addr"))
    var email: [String] = []

    @Flag(help: "Email the --email addresses after successful runs too.")
    var emailOnSuccess = false

    @Option(name: .shortAndLong, help: "Compression (default: the config's at run time).")
    var compression: CompressionAlgorithm?

    @Option(help: "Content format (default: the config's at run time).")
    var format: DumpFormat?

    @Flag(help: "Verify each backup after writing it.")
    var verify = false

    @Flag(help: "Encrypt each backup to the config's encryption.recipients.")
    var encrypt = false

    @Flag(help: "Also upload each backup to the configured cloud store; retention prunes both copies.")
    var cloud = false

    @Option(help: ArgumentHelp("IANA time zone of the cron fields (default UTC).", valueName: "tz"))
    var timezone: String?

    @Flag(help: "List the schedules with next run and last result.")
    var list = false

    @Option(help: ArgumentHelp("Remove a schedule.", valueName: "name"))
    var remove: String?

    @Option(help: ArgumentHelp("Disable a schedule (kept, not run).", valueName: "name"))
    var disable: String?

    @Option(help: ArgumentHelp("Enable a disabled schedule.", valueName: "name"))
    var enable: String?

    @Option(help: ArgumentHelp("Run a schedule's job now, in the foreground.", valueName: "name"))
    var runNow: String?

    @Option(help: ArgumentHelp("Print a systemd .service and .timer for a schedule.", valueName: "name"))
    var printSystemd: String?

    @Option(help: ArgumentHelp("Print a crontab entry for a schedule.", valueName: "name"))
    var printCrontab: String?

    @Flag(help: "Show log lines on stderr.")
    var verbose = false

    @OptionGroup var common: CommonOptions

    var addFlagsGiven: Bool {
      name != nil || database != nil || retention != nil || keepLast != nil || keepDaily != nil
        || keepWeekly != nil || keepMonthly != nil || webhook != nil || compression != nil || format != nil
        || verify || encrypt || cloud || timezone != nil || !email.isEmpty || emailOnSuccess
    }

    func validate() throws {
      let actions = [
        list, remove != nil, disable != nil, enable != nil, runNow != nil, printSystemd != nil,
        printCrontab != nil, cron != nil,
      ].filter { $0 }.count
      guard actions == 1 else {
        throw ValidationError(
          "give a cron expression with -n and -d to add a schedule, or exactly one of --list, --remove, --enable, --disable, --run-now, --print-systemd, --print-crontab"
        )
      }
      if cron != nil {
        guard name != nil, database != nil else {
          throw ValidationError("adding a schedule needs -n/--name and -d/--database")
        }
      } else if addFlagsGiven {
        throw ValidationError("schedule options (-n, -d, --retention, ...) are only for adding a schedule")
      }
      for (flag, v) in [
        ("--retention", retention), ("--keep-last", keepLast), ("--keep-daily", keepDaily),
        ("--keep-weekly", keepWeekly), ("--keep-monthly", keepMonthly),
      ] {
        if let v, v < 0 { throw ValidationError("\(flag) must be a whole number >= 0") }
      }
      if emailOnSuccess && email.isEmpty {
        throw ValidationError("--email-on-success needs at least one --email address")
      }
    }

    func run() throws {
      let store = common.configStore
      if let cron { return try add(store, cron: cron) }
      if list { return try doList(store) }
      if let n = remove {
        var config = try store.load()
        guard config.schedules.removeValue(forKey: n) != nil else { throw Self.noSchedule(n) }
        try store.save(config)
        return print(common.json ? "{\"removed\":\"\(n)\"}" : "removed schedule \(n)")
      }
      if let n = enable ?? disable {
        var config = try store.load()
        guard config.schedules[n] != nil else { throw Self.noSchedule(n) }
        config.schedules[n]!.enabled = enable != nil
        try store.save(config)
        let word = enable != nil ? "enabled" : "disabled"
        return print(common.json ? "{\"\(word)\":\"\(n)\"}" : "\(word) schedule \(n)")
      }
      if let n = runNow { return try doRunNow(store, name: n) }
      if let n = printSystemd ?? printCrontab {
        let config = try store.load()
        guard let s = config.schedules[n] else { throw Self.noSchedule(n) }
        let exe = Self.executablePath()
        let text =
          printSystemd != nil
          ? try SystemScheduler.systemdUnits(name: n, schedule: s, executable: exe, configPath: store.path)
          : try SystemScheduler.crontab(name: n, schedule: s, executable: exe, configPath: store.path)
        FileHandle.standardOutput.write(Data(text.utf8))
      }
    }

    static func noSchedule(_ n: String) -> BackupError {
      BackupError(
        .notFound, "no schedule named \"\(n)\"", hint: "`ai-shell backup schedule --list` shows them")
    }

    static func executablePath() -> String {
      (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "ai-shell"
    }

    func add(_ store: ConfigStore, cron: String) throws {
      let name = name!
      try Config.Schedule.validateName(name)
      let parsed = try CronExpression.parse(cron)
      let zone = timezone ?? "UTC"
      _ = try CronExpression.validateTimeZone(zone)
      var config = try store.load()
      // the database must resolve now (a typo is reported when adding, not at 3 am)
      _ = try ResolvedDatabase.resolve(database!, config: config)
      var s = Config.Schedule(cron: parsed.description, timezone: zone, database: database!)
      s.compression = compression
      s.format = format
      s.verify = verify
      s.encrypt = encrypt
      s.cloud = cloud
      s.retentionDays = retention
      s.keepLast = keepLast
      s.keepDaily = keepDaily
      s.keepWeekly = keepWeekly
      s.keepMonthly = keepMonthly
      s.webhook = webhook
      s.email = email
      s.emailOnSuccess = emailOnSuccess
      for address in email { try ScheduleEmail.validateAddress(address, what: "--email address") }
      if !email.isEmpty {
        // a schedule that cannot mail is reported when adding it, not after the first failure
        let smtp = config.notifications.smtp
        for (key, value) in [("host", smtp.host), ("from", smtp.from)] where value == nil {
          throw BackupError(
            .usage, "--email sends through notifications.smtp, and notifications.smtp.\(key) is not set",
            hint:
              "ai-shell backup config --set notifications.smtp.host=HOST notifications.smtp.from=ADDR (docs/SCHEDULES.md)"
          )
        }
      }
      // a schedule that cannot reach its bucket is reported when adding it (credentials too)
      if cloud { _ = try CloudConfig.makeStore(config) }
      if encrypt && config.encryption.recipients.isEmpty {
        throw BackupError(
          .usage,
          "--encrypt in a schedule encrypts to the config's encryption.recipients, and there are none",
          hint: "add one: ai-shell backup config --set encryption.recipients=age1...")
      }
      let replaced = config.schedules[name] != nil
      config.schedules[name] = s
      try store.save(config)
      if common.json {
        print(try Render.json(ScheduleListing.make(name: name, s, state: nil, locked: false)))
      } else {
        let next = parsed.nextRun(after: Date(), in: try CronExpression.validateTimeZone(zone))
        print(
          "\(replaced ? "replaced" : "added") schedule \(name): \(parsed.description) (\(zone)), next run \(next.map { Scheduler.describe($0, TimeZone(identifier: zone)!) } ?? "never")"
        )
      }
    }

    func doList(_ store: ConfigStore) throws {
      let config = try store.load()
      let dir = common.effectiveBackupDirectory()
      let state = ScheduleState(backupDirectory: dir).load()
      let rows = config.schedules.keys.sorted().map { n in
        ScheduleListing.make(
          name: n, config.schedules[n]!, state: state[n],
          locked: ScheduleLock.isHeld(backupDirectory: dir, schedule: n))
      }
      if common.json { return print(try Render.json(rows)) }
      if rows.isEmpty {
        return print("no schedules (add one with `ai-shell backup schedule CRON -n NAME -d DB`)")
      }
      for r in rows {
        print(
          "\(r.name)\(r.enabled ? "" : " (disabled)"): \(r.cron) \(r.timezone), database \(ConnectionURL.redact(r.database))"
        )
        if !r.email.isEmpty {
          print(
            "  email: \(r.email.joined(separator: ", ")) (\(r.emailOnSuccess ? "every run" : "failures only"))"
          )
        }
        print("  next run: \(r.nextRunText ?? "never")")
        if let last = r.lastRun {
          let what = [last.id, last.error].compactMap { $0 }.joined(separator: ": ")
          print(
            "  last run: \(Render.date(last.at)) \(r.lastRunStatus ?? last.status.rawValue)\(what.isEmpty ? "" : " \(what)")"
          )
        } else {
          print("  last run: never")
        }
      }
    }

    func doRunNow(_ store: ConfigStore, name: String) throws {
      let config = try store.load()
      guard config.schedules[name] != nil else { throw Self.noSchedule(name) }
      let dir = common.effectiveBackupDirectory()
      let service = common.service(verbose: verbose)
      let json = common.json
      let runner = ScheduleRunner(
        config: config, backupDirectory: dir, logger: service.logger, log: { printStderr($0) })
      switch try runner.run(name) {
      case .busy:
        throw BackupError(
          .refused, "schedule \"\(name)\" is already running in another process",
          hint: "its lock \(ScheduleLock.fileName(name)) in \(dir) is held")
      case .alreadyRun:
        return
      case .ran(let outcome):
        if json { print(try Render.json(outcome)) }
        guard outcome.status == .success, let id = outcome.backupId else {
          throw BackupError(.failure, "schedule \"\(name)\" failed: \(outcome.error ?? "unknown error")")
        }
        if !json { print(id) }
      }
    }
  }
}

/// One row of `schedule --list`.
struct ScheduleListing: Codable {
  var name: String
  var cron: String
  var timezone: String
  var database: String
  var enabled: Bool
  var compression: CompressionAlgorithm?
  var format: DumpFormat?
  var verify: Bool
  var encrypt: Bool
  var cloud: Bool
  var retentionDays: Int?
  var keepLast: Int?
  var keepDaily: Int?
  var keepWeekly: Int?
  var keepMonthly: Int?
  var webhook: String?
  var email: [String]
  var emailOnSuccess: Bool
  /// The next run, ISO 8601 UTC (nil: disabled or never).
  var nextRun: Date?
  /// The next run as local time with zone abbreviation, and UTC.
  var nextRunText: String?
  var lastRun: ScheduleRunRecord?
  /// `running` only while a process holds the lock; `interrupted` for a run whose process died.
  var lastRunStatus: String?
  var running: Bool

  static func make(name: String, _ s: Config.Schedule, state: ScheduleRunRecord?, locked: Bool)
    -> ScheduleListing
  {
    var next: Date?
    var nextText: String?
    if s.enabled, let parsed = try? s.parsed() {
      next = parsed.cron.nextRun(after: Date(), in: parsed.timeZone)
      nextText = next.map { Scheduler.describe($0, parsed.timeZone) }
    }
    var status = state?.status.rawValue
    if state?.status == .running && !locked { status = "interrupted" }
    return ScheduleListing(
      name: name, cron: s.cron, timezone: s.timezone, database: ConnectionURL.redact(s.database),
      enabled: s.enabled, compression: s.compression, format: s.format, verify: s.verify, encrypt: s.encrypt,
      cloud: s.cloud,
      retentionDays: s.retentionDays, keepLast: s.keepLast, keepDaily: s.keepDaily, keepWeekly: s.keepWeekly,
      keepMonthly: s.keepMonthly, webhook: s.webhook, email: s.email, emailOnSuccess: s.emailOnSuccess,
      nextRun: next, nextRunText: nextText, lastRun: state,
      lastRunStatus: status, running: locked)
  }
}
