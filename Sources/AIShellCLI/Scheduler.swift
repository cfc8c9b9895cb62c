import ArgumentParser
import BackupCore
import BackupModel
import Dispatch
import Foundation
import Logging

extension Backup {
  struct SchedulerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "scheduler",
      abstract: "Run the backup schedules in the foreground (for systemd, a container or a terminal).",
      discussion: """
        Logs one line per event on stderr. Re-reads the config on every pass (at least every 30 s), \
        so schedule changes need no restart. SIGTERM or SIGINT stops it: a running backup may \
        finish for up to --shutdown-timeout seconds, else it is marked failed and the exit status \
        is 1. One run of a schedule at a time, also across processes (a lock file per schedule in \
        the backup directory).
        """)

    @Flag(
      inversion: .prefixedNo,
      help: "Run once at start-up a schedule whose last due run was missed while no scheduler ran.")
    var catchUp = true

    @Option(help: ArgumentHelp("Seconds a running backup may take to finish after SIGTERM.", valueName: "s"))
    var shutdownTimeout: Double = 60

    @Flag(help: "Also show the backup service's log lines.")
    var verbose = false

    @OptionGroup var common: CommonOptions

    func validate() throws {
      guard shutdownTimeout >= 0, shutdownTimeout.isFinite else {
        throw ValidationError("--shutdown-timeout must be zero or more seconds")
      }
    }

    func run() throws {
      // fail early on a broken config
      _ = try common.loadConfig()
      let configPath = common.configStore.path
      let flagDir = common.backupDir
      var logger = Logger(label: "ai-shell") { StreamLogHandler.standardError(label: $0) }
      logger.logLevel = verbose ? .info : .warning
      let lock = NSLock()
      let scheduler = Scheduler(
        options: .init(catchUp: catchUp, shutdownTimeoutSeconds: shutdownTimeout), logger: logger,
        loadConfig: { try ConfigStore(path: configPath).load() },
        backupDirectory: { config in
          if let flagDir, !flagDir.isEmpty { return BackupDirectory.resolve(flag: flagDir) }
          return BackupDirectory.resolve(flag: nil, configured: config.backupDir)
        },
        log: { line in
          lock.lock()
          defer { lock.unlock() }
          printStderr("\(UTCStamp.extended(Date())) \(line)")
        })
      // a parent may have left SIGTERM/SIGINT blocked (posix_spawn keeps the mask): unblock them
      var unblock = sigset_t()
      sigemptyset(&unblock)
      sigaddset(&unblock, SIGTERM)
      sigaddset(&unblock, SIGINT)
      pthread_sigmask(SIG_UNBLOCK, &unblock, nil)
      var sources: [DispatchSourceSignal] = []
      for (sig, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
        signal(sig, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler { scheduler.requestStop(name) }
        source.resume()
        sources.append(source)
      }
      let status = scheduler.run()
      sources.forEach { $0.cancel() }
      if status != 0 { throw ExitCode(status) }
    }
  }

  struct Prune: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Apply the schedules' retention rules: remove the backups no rule keeps.",
      discussion: """
        A schedule's backups are those it created (their name is the schedule's name). Keep rules \
        (--retention days, --keep-last, --keep-daily/weekly/monthly of the schedule) combine: a \
        backup kept by any rule is kept; the config's maxBackups caps the count; the newest backup \
        is never removed. See docs/SCHEDULES.md.
        """)

    @Option(help: ArgumentHelp("Only this schedule (default: every schedule).", valueName: "name"))
    var schedule: String?

    @Flag(help: "Print what would be removed, remove nothing.")
    var dryRun = false

    @OptionGroup var common: CommonOptions

    func run() throws {
      let config = try common.loadConfig()
      let service = common.service()
      let json = common.json
      let reports = try Pruner(
        config: config, backupDirectory: service.store.directory, logger: service.logger
      )
      .prune(schedule: schedule, dryRun: dryRun) { line in if !json { print(line) } }
      if json { return print(try Render.json(reports)) }
      let removed = reports.reduce(0) { $0 + $1.removed.count }
      let kept = reports.reduce(0) { $0 + $1.kept.count }
      print(
        "\(dryRun ? "would remove" : "removed") \(removed) backup\(removed == 1 ? "" : "s"), kept \(kept)")
    }
  }
}
