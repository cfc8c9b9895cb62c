import BackupModel
import Foundation
import Logging

/// Runs one schedule's job: lock, `BackupService.create`, the state record, retention after a
/// success, the webhook and the email. `backup schedule --run-now` and the scheduler both go
/// through `run`.
public final class ScheduleRunner: @unchecked Sendable {
  public let config: Config
  public let backupDirectory: String
  public let logger: Logger
  /// One line per event (the scheduler prefixes a timestamp).
  public let log: @Sendable (String) -> Void

  public init(
    config: Config, backupDirectory: String, logger: Logger, log: @escaping @Sendable (String) -> Void
  ) {
    self.config = config
    self.backupDirectory = backupDirectory
    self.logger = logger
    self.log = log
  }

  public struct Outcome: Codable, Sendable {
    public var schedule: String
    public var status: ScheduleRunRecord.Status
    public var backupId: String?
    public var sizeBytes: Int64?
    public var durationSeconds: Double
    public var error: String?
    /// Backups retention removed after the run.
    public var removed: [RetentionDecision]
    public var webhookDelivered: Bool?
    /// nil: no email was due (none configured, or a success without `emailOnSuccess`).
    public var emailSent: Bool?
  }

  public enum Result: Sendable {
    case ran(Outcome)
    /// Another process holds the schedule's lock.
    case busy
    /// The slot was already run (by another process) since `notRunSince`.
    case alreadyRun(ScheduleRunRecord)
  }

  /// The service a schedule's runs and retention use: with `cloud`, connected to the configured
  /// cloud store (keeping the local copy per `keepLocalCopy`).
  static func service(for s: Config.Schedule, config: Config, backupDirectory: String, logger: Logger) throws
    -> BackupService
  {
    let service = BackupService(backupDirectory: backupDirectory, logger: logger)
    if s.cloud {
      service.cloud = try CloudConfig.makeStore(config, logger: logger)
      service.keepLocalCopy = config.keepLocalCopy
    }
    return service
  }

  /// The `create` options of a schedule: the same precedence as `backup create` (the schedule's
  /// setting > the config's > the default), encryption to the config's recipients.
  public static func createOptions(name: String, _ s: Config.Schedule, config: Config) throws
    -> BackupService.CreateOptions
  {
    let d = CreateDefaults.resolve(
      compression: s.compression, level: nil, format: s.format, lockTimeoutSeconds: nil, config: config)
    var encryption: EncryptionRequest?
    if s.encrypt {
      guard !config.encryption.recipients.isEmpty else {
        throw BackupError(
          .usage, "schedule \"\(name)\" encrypts, but the config has no encryption.recipients",
          hint: "add one: ai-shell backup config --set encryption.recipients=age1...")
      }
      encryption = EncryptionRequest(recipients: config.encryption.recipients, passphrase: nil)
    }
    let resolved = try ResolvedDatabase.resolve(s.database, config: config)
    resolved.exportPassword()
    return BackupService.CreateOptions(
      database: resolved.locatorText, name: name, compression: d.compression, level: d.level,
      format: d.format,
      verify: s.verify, lockTimeoutSeconds: d.lockTimeoutSeconds, encryption: encryption)
  }

  /// Runs the job now. `notRunSince`: skip when a run started at or after this time (the
  /// scheduler passes the slot's due time, so two schedulers never both run one slot).
  public func run(_ name: String, notRunSince: Date? = nil, prune: Bool = true) throws -> Result {
    guard let schedule = config.schedules[name] else {
      throw BackupError(
        .notFound, "no schedule named \"\(name)\"", hint: "`ai-shell backup schedule --list` shows them")
    }
    guard let lock = try ScheduleLock.tryAcquire(backupDirectory: backupDirectory, schedule: name) else {
      return .busy
    }
    defer { lock.release() }
    let state = ScheduleState(backupDirectory: backupDirectory)
    if let notRunSince, let last = state.load()[name], last.at >= notRunSince {
      return .alreadyRun(last)
    }
    let started = Date()
    try state.record(name, ScheduleRunRecord(status: .running, at: started))
    log("run \(name) started (database \(schedule.database))")
    var outcome = Outcome(
      schedule: name, status: .failed, backupId: nil, sizeBytes: nil, durationSeconds: 0, error: nil,
      removed: [])
    do {
      let service = try Self.service(
        for: schedule, config: config, backupDirectory: backupDirectory, logger: logger)
      let summary = try service.create(try Self.createOptions(name: name, schedule, config: config))
      outcome.status = .success
      outcome.backupId = summary.id
      outcome.sizeBytes = summary.sizeBytes
      outcome.durationSeconds = Date().timeIntervalSince(started)
      try state.record(
        name, ScheduleRunRecord(id: summary.id, status: .success, at: started, finishedAt: Date()))
      log("run \(name) succeeded: \(summary.id) (\(summary.sizeBytes ?? 0) bytes)")
    } catch {
      let message = (error as? BackupError)?.message ?? "\(error)"
      outcome.error = message
      outcome.durationSeconds = Date().timeIntervalSince(started)
      try? state.record(
        name, ScheduleRunRecord(status: .failed, at: started, finishedAt: Date(), error: message))
      log("run \(name) failed: \(message)")
    }
    // retention only after a success: a failed run never deletes anything
    if outcome.status == .success && prune {
      do {
        outcome.removed = try Pruner(config: config, backupDirectory: backupDirectory, logger: logger)
          .prune(schedule: name, dryRun: false, newest: outcome.backupId, log: log).flatMap(\.removed)
      } catch {
        log("retention for \(name) failed: \((error as? BackupError)?.message ?? "\(error)")")
      }
    }
    if let url = schedule.webhook {
      let payload = WebhookPayload(
        event: outcome.status == .success ? "backup.succeeded" : "backup.failed", schedule: name,
        database: ConnectionURL.redact(schedule.database), backupId: outcome.backupId,
        sizeBytes: outcome.sizeBytes, durationSeconds: outcome.durationSeconds,
        status: outcome.status.rawValue, error: outcome.error, at: Date())
      let log = self.log
      outcome.webhookDelivered = Webhook.deliver(payload, to: url) { log($0) }
      if outcome.webhookDelivered == true { log("webhook for \(name) delivered") }
    }
    let log = self.log
    outcome.emailSent = ScheduleEmail.send(
      name: name, schedule: schedule, outcome: outcome, started: started, config: config
    ) { log($0) }
    return .ran(outcome)
  }
}

/// Retention over the catalog: the backups of a schedule are the complete ones whose manifest
/// `name` is the schedule's name.
public struct Pruner {
  public let config: Config
  public let backupDirectory: String
  public let logger: Logger

  public init(config: Config, backupDirectory: String, logger: Logger) {
    self.config = config
    self.backupDirectory = backupDirectory
    self.logger = logger
  }

  public struct Report: Codable, Sendable {
    public var schedule: String
    public var dryRun: Bool
    public var kept: [RetentionDecision]
    public var removed: [RetentionDecision]
  }

  /// Prunes one schedule (or every schedule when nil). Removes, or with `dryRun` only reports.
  public func prune(
    schedule: String?, dryRun: Bool, now: Date = Date(), newest: String? = nil, log: (String) -> Void
  ) throws
    -> [Report]
  {
    let names: [String]
    if let schedule {
      guard config.schedules[schedule] != nil else {
        throw BackupError(
          .notFound, "no schedule named \"\(schedule)\"", hint: "`ai-shell backup schedule --list` shows them"
        )
      }
      names = [schedule]
    } else {
      names = config.schedules.keys.sorted()
    }
    // what retention needs of a backup: its schedule's name and its date (the local manifests
    // read as summaries, `Catalog.summaries`), and the entry to delete
    typealias Candidate = (entry: CatalogEntry, name: String?, createdAt: Date)
    let local: [Candidate] = try BackupService(backupDirectory: backupDirectory, logger: logger).catalog
      .summaries().compactMap { e in
        guard e.status == .complete, let m = e.manifest else { return nil }
        return (
          CatalogEntry(id: e.id, status: e.status, manifest: nil, fileName: e.fileName), m.name, m.createdAt
        )
      }
    var reports: [Report] = []
    for name in names {
      let s = config.schedules[name]!
      let zone = TimeZone(identifier: s.timezone) ?? TimeZone(identifier: "UTC")!
      // a cloud schedule's backups are the local ones and those only in the bucket; deleting
      // one removes both copies
      let service = try ScheduleRunner.service(
        for: s, config: config, backupDirectory: backupDirectory, logger: logger)
      var entries = local
      if service.cloud != nil {
        let known = Set(local.map(\.entry.id))
        entries += try service.cloudEntries().filter { !known.contains($0.id) }.compactMap { e in
          e.manifest.map { (e, $0.name, $0.createdAt) }
        }
      }
      let mine = entries.filter { $0.name == name }
      let byID = Dictionary(uniqueKeysWithValues: mine.map { ($0.entry.id, $0.entry) })
      let decisions = RetentionPolicy.evaluate(
        mine.map { ($0.entry.id, $0.createdAt) }, rules: s.retentionRules(config: config), now: now,
        timeZone: zone, newest: newest)
      let removed = decisions.filter { !$0.keep }
      for d in removed {
        if dryRun {
          log("would remove \(d.id) (schedule \(name): \(d.reasons.joined(separator: ", ")))")
        } else {
          _ = try service.delete(byID[d.id]!)
          log("removed \(d.id) (schedule \(name): \(d.reasons.joined(separator: ", ")))")
        }
      }
      reports.append(Report(schedule: name, dryRun: dryRun, kept: decisions.filter(\.keep), removed: removed))
    }
    return reports
  }
}
