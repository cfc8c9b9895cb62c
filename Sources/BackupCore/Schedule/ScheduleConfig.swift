import BackupModel
import BackupNotify
import BackupPipeline
import Foundation

extension Config {
  /// One backup schedule (`schedules.<name>` in the config file, docs/SCHEDULES.md). The result of
  /// its last run is kept apart, in the backup directory's state file (`ScheduleState`).
  public struct Schedule: Codable, Equatable, Sendable {
    /// A cron expression (`CronExpression`), stored as given.
    public var cron: String
    /// An IANA time zone name; the cron fields are matched against its wall clock.
    public var timezone: String = "UTC"
    /// A connection name, URL or SQLite path, as `backup create --database` takes.
    public var database: String
    /// nil: the config's `compression` (as `backup create` without `-c`).
    public var compression: CompressionAlgorithm?
    /// nil: the config's `format`.
    public var format: DumpFormat?
    public var verify: Bool = false
    /// Encrypt to the config's `encryption.recipients`.
    public var encrypt: Bool = false
    /// Also upload to the configured cloud store (`cloudProvider`, `cloudConfig.*`), keeping the
    /// local copy per `keepLocalCopy`; retention prunes both copies.
    public var cloud: Bool = false
    public var retentionDays: Int?
    public var keepLast: Int?
    public var keepDaily: Int?
    public var keepWeekly: Int?
    public var keepMonthly: Int?
    /// A URL that gets a JSON POST after each run.
    public var webhook: String?
    /// Addresses that get an email (through `notifications.smtp`) when a run fails, and after a
    /// success too when `emailOnSuccess` is set.
    public var email: [String] = []
    public var emailOnSuccess: Bool = false
    public var enabled: Bool = true

    public init(cron: String, timezone: String = "UTC", database: String) {
      self.cron = cron
      self.timezone = timezone
      self.database = database
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
      case cron, timezone, database, compression, format, verify, encrypt, cloud, retentionDays, keepLast
      case keepDaily, keepWeekly, keepMonthly, webhook, email, emailOnSuccess, enabled
    }

    public init(from decoder: Decoder) throws {
      try rejectUnknownKeys(decoder, CodingKeys.self, in: "schedules.<name>")
      let c = try decoder.container(keyedBy: CodingKeys.self)
      cron = try c.decode(String.self, forKey: .cron)
      timezone = try c.decodeIfPresent(String.self, forKey: .timezone) ?? "UTC"
      database = try c.decode(String.self, forKey: .database)
      compression = try c.decodeIfPresent(CompressionAlgorithm.self, forKey: .compression)
      format = try c.decodeIfPresent(DumpFormat.self, forKey: .format)
      verify = try c.decodeIfPresent(Bool.self, forKey: .verify) ?? false
      encrypt = try c.decodeIfPresent(Bool.self, forKey: .encrypt) ?? false
      cloud = try c.decodeIfPresent(Bool.self, forKey: .cloud) ?? false
      retentionDays = try c.decodeIfPresent(Int.self, forKey: .retentionDays)
      keepLast = try c.decodeIfPresent(Int.self, forKey: .keepLast)
      keepDaily = try c.decodeIfPresent(Int.self, forKey: .keepDaily)
      keepWeekly = try c.decodeIfPresent(Int.self, forKey: .keepWeekly)
      keepMonthly = try c.decodeIfPresent(Int.self, forKey: .keepMonthly)
      webhook = try c.decodeIfPresent(String.self, forKey: .webhook)
      email = try c.decodeIfPresent([String].self, forKey: .email) ?? []
      emailOnSuccess = try c.decodeIfPresent(Bool.self, forKey: .emailOnSuccess) ?? false
      enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
    }

    public func encode(to encoder: Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(cron, forKey: .cron)
      try c.encode(timezone, forKey: .timezone)
      try c.encode(database, forKey: .database)
      try c.encodeIfPresent(compression, forKey: .compression)
      try c.encodeIfPresent(format, forKey: .format)
      try c.encode(verify, forKey: .verify)
      try c.encode(encrypt, forKey: .encrypt)
      if cloud { try c.encode(cloud, forKey: .cloud) }
      try c.encodeIfPresent(retentionDays, forKey: .retentionDays)
      try c.encodeIfPresent(keepLast, forKey: .keepLast)
      try c.encodeIfPresent(keepDaily, forKey: .keepDaily)
      try c.encodeIfPresent(keepWeekly, forKey: .keepWeekly)
      try c.encodeIfPresent(keepMonthly, forKey: .keepMonthly)
      try c.encodeIfPresent(webhook, forKey: .webhook)
      try c.encode(email, forKey: .email)
      try c.encode(emailOnSuccess, forKey: .emailOnSuccess)
      try c.encode(enabled, forKey: .enabled)
    }

    /// The parsed cron expression and time zone.
    public func parsed() throws -> (cron: CronExpression, timeZone: TimeZone) {
      (try CronExpression.parse(cron), try CronExpression.validateTimeZone(timezone))
    }

    /// The retention rules of this schedule. A schedule without any rule of its own keeps
    /// backups for the config's `retentionDays`; `maxBackups` always caps the count.
    public func retentionRules(config: Config) -> RetentionRules {
      var rules = RetentionRules(
        withinDays: retentionDays, last: keepLast, daily: keepDaily, weekly: keepWeekly, monthly: keepMonthly,
        maxBackups: config.maxBackups)
      if !rules.hasKeepRule { rules.withinDays = config.retentionDays }
      return rules
    }

    /// Checks what the types do not; errors name the key (`schedules.<name>.<key>`).
    func validate(key: String, config: Config) throws {
      func bad(_ sub: String, _ why: String) -> BackupError {
        BackupError(.usage, "invalid \(key).\(sub): \(why)")
      }
      do {
        _ = try CronExpression.parse(cron)
      } catch let e as BackupError {
        throw bad("cron", e.message)
      }
      do {
        _ = try CronExpression.validateTimeZone(timezone)
      } catch let e as BackupError {
        throw bad("timezone", e.message)
      }
      guard !database.isEmpty else { throw bad("database", "must not be empty") }
      for (sub, value) in [
        ("retentionDays", retentionDays), ("keepLast", keepLast), ("keepDaily", keepDaily),
        ("keepWeekly", keepWeekly), ("keepMonthly", keepMonthly),
      ] {
        if let value, value < 0 { throw bad(sub, "must be a whole number >= 0") }
      }
      if let webhook {
        guard let url = URL(string: webhook), let scheme = url.scheme?.lowercased(),
          scheme == "http" || scheme == "https", url.host != nil
        else { throw bad("webhook", "\"\(webhook)\" is not an http:// or https:// URL") }
      }
      for address in email {
        do {
          try EmailMessage.validateAddress(address, what: "address")
        } catch let e as BackupError {
          throw bad("email", e.message)
        }
      }
    }

    /// Schedule names become file names (`.schedule-<name>.lock`): letters, digits, `-`, `_`, `.`.
    public static func validateName(_ name: String) throws {
      try validateConfigName(name, kind: "schedule")
    }

  }
}
