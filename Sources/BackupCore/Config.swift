import BackupModel
import BackupNotify
import BackupPipeline
import Foundation

/// Where cloud copies go (`--cloud`); aws-s3 covers S3-compatible stores through
/// `cloudConfig.endpoint`. Azure Blob and GCS are accepted here and arrive with their own issue.
public enum CloudProvider: String, Codable, CaseIterable, Sendable {
  case none
  case awsS3 = "aws-s3"
  case azureBlob = "azure-blob"
  case gcs
}

/// A JSON value as the config file holds it (used for dotted get/set and for redaction).
public indirect enum JSONValue: Codable, Equatable, Sendable {
  case null
  case bool(Bool)
  case number(Double)
  case string(String)
  case array([JSONValue])
  case object([String: JSONValue])

  public init(from decoder: Decoder) throws {
    let c = try decoder.singleValueContainer()
    if c.decodeNil() {
      self = .null
    } else if let b = try? c.decode(Bool.self) {
      self = .bool(b)
    } else if let n = try? c.decode(Double.self) {
      self = .number(n)
    } else if let s = try? c.decode(String.self) {
      self = .string(s)
    } else if let a = try? c.decode([JSONValue].self) {
      self = .array(a)
    } else {
      self = .object(try c.decode([String: JSONValue].self))
    }
  }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.singleValueContainer()
    switch self {
    case .null: try c.encodeNil()
    case .bool(let b): try c.encode(b)
    case .number(let n):
      if n == n.rounded(), abs(n) < 1e15 { try c.encode(Int64(n)) } else { try c.encode(n) }
    case .string(let s): try c.encode(s)
    case .array(let a): try c.encode(a)
    case .object(let o): try c.encode(o)
    }
  }

  /// The value at a dotted path (`a.b.c`), or nil when a component is missing.
  public func value(at path: [String]) -> JSONValue? {
    guard let first = path.first else { return self }
    guard case .object(let o) = self, let child = o[first] else { return nil }
    return child.value(at: Array(path.dropFirst()))
  }

  /// Sets (or with nil removes) the value at a dotted path, creating objects on the way.
  public mutating func set(_ newValue: JSONValue?, at path: [String]) {
    guard let first = path.first else {
      self = newValue ?? .null
      return
    }
    var o: [String: JSONValue] = [:]
    if case .object(let existing) = self { o = existing }
    if path.count == 1 {
      o[first] = newValue
    } else {
      var child = o[first] ?? .object([:])
      child.set(newValue, at: Array(path.dropFirst()))
      o[first] = child
    }
    self = .object(o)
  }

  /// Text for `config --get`: strings bare, numbers and booleans as JSON, objects and arrays as
  /// pretty JSON.
  public var displayText: String {
    switch self {
    case .null: return "null"
    case .bool(let b): return b ? "true" : "false"
    case .number: return jsonText(pretty: false)
    case .string(let s): return s
    case .array, .object: return jsonText(pretty: true)
    }
  }

  public func jsonText(pretty: Bool) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting =
      pretty
      ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
    return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
  }
}

/// The typed config file (docs/CONFIG.md). Every key is optional in the file; a missing key takes
/// its default, an unknown key is an error (so a typo is reported, not ignored).
public struct Config: Codable, Equatable, Sendable {
  /// nil: `$XDG_DATA_HOME/ai-shell/backups`.
  public var backupDir: String?
  public var retentionDays: Int = 30
  public var maxBackups: Int = 50
  public var cloudProvider: CloudProvider = .none
  public var cloudConfig: [String: JSONValue] = [:]
  /// `create --cloud` keeps the local file and manifest too (false: the bucket alone holds it).
  public var keepLocalCopy = true
  public var compression: CompressionAlgorithm = .zstd
  /// nil: the algorithm's default level. Applies only while `compression` is the algorithm used.
  public var compressionLevel: Int?
  public var format: DumpFormat = .sql
  public var lockTimeoutSeconds: Double = 10
  public var encryption = Encryption()
  public var connections: [String: Connection] = [:]
  /// Backup schedules by name (docs/SCHEDULES.md); changed with `backup schedule`.
  public var schedules: [String: Schedule] = [:]
  /// How schedules send email (docs/SCHEDULES.md, Notifications).
  public var notifications = Notifications()

  public struct Notifications: Codable, Equatable, Sendable {
    public var smtp = SMTP()
    public init() {}
    enum CodingKeys: String, CodingKey, CaseIterable { case smtp }
    public init(from decoder: Decoder) throws {
      try rejectUnknownKeys(decoder, CodingKeys.self, in: "notifications")
      let c = try decoder.container(keyedBy: CodingKeys.self)
      smtp = try c.decodeIfPresent(SMTP.self, forKey: .smtp) ?? SMTP()
    }
  }

  /// The mail server schedules send through (`notifications.smtp.*`). Every key may be null; a
  /// schedule with `email` needs at least `host` and `from` when it sends.
  public struct SMTP: Codable, Equatable, Sendable {
    public var host: String?
    /// nil: 587 for starttls, 465 for tls, 25 for none.
    public var port: Int?
    public var tls: SMTPSecurity = .starttls
    public var username: String?
    /// A `${ENV_VAR}` reference (resolved when sending). An inline password never stays here:
    /// `ConfigStore.save` moves it to a 0600 file and records that as `passwordFile`.
    public var password: String?
    /// A file holding the password (the one `save` wrote, or the user's own, e.g. a credential).
    public var passwordFile: String?
    public var from: String?
    /// A PEM file of extra trusted CA certificates (a private relay's CA).
    public var caFile: String?

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
      case host, port, tls, username, password, passwordFile, from, caFile
    }

    public init(from decoder: Decoder) throws {
      try rejectUnknownKeys(decoder, CodingKeys.self, in: "notifications.smtp")
      let c = try decoder.container(keyedBy: CodingKeys.self)
      host = try c.decodeIfPresent(String.self, forKey: .host)
      port = try c.decodeIfPresent(Int.self, forKey: .port)
      tls = try c.decodeIfPresent(SMTPSecurity.self, forKey: .tls) ?? .starttls
      username = try c.decodeIfPresent(String.self, forKey: .username)
      password = try c.decodeIfPresent(String.self, forKey: .password)
      passwordFile = try c.decodeIfPresent(String.self, forKey: .passwordFile)
      from = try c.decodeIfPresent(String.self, forKey: .from)
      caFile = try c.decodeIfPresent(String.self, forKey: .caFile)
    }

    public func encode(to encoder: Encoder) throws {
      // every key present (null when unset), so `config --show` lists them all
      var c = encoder.container(keyedBy: CodingKeys.self)
      func put(_ v: String?, _ k: CodingKeys) throws {
        if let v { try c.encode(v, forKey: k) } else { try c.encodeNil(forKey: k) }
      }
      try put(host, .host)
      if let port { try c.encode(port, forKey: .port) } else { try c.encodeNil(forKey: .port) }
      try c.encode(tls, forKey: .tls)
      try put(username, .username)
      try put(password, .password)
      try put(passwordFile, .passwordFile)
      try put(from, .from)
      try put(caFile, .caFile)
    }

    public static var keys: [String] { CodingKeys.allCases.map(\.rawValue) }

    /// Checks what the types do not; errors name the key.
    func validate() throws {
      func bad(_ key: String, _ why: String) -> BackupError {
        BackupError(.usage, "invalid notifications.smtp.\(key): \(why)")
      }
      if let host {
        guard !host.isEmpty, !host.contains(where: { $0.isWhitespace || "/@".contains($0) }) else {
          throw bad("host", "\"\(host)\" is not a host name or address")
        }
      }
      if let port, !(1...65535).contains(port) { throw bad("port", "must be 1...65535") }
      if let username, username.isEmpty { throw bad("username", "must not be empty (use null for none)") }
      if let password, password.contains("${") {
        do {
          _ = try ConnectionURL.expandVariables(password, environment: [:], what: "")
        } catch let e as BackupError where e.message.hasPrefix("unterminated") {
          throw bad("password", "unterminated ${ reference")
        } catch {}
      }
      for (key, path) in [("passwordFile", passwordFile), ("caFile", caFile)] {
        if let path, path.isEmpty { throw bad(key, "must not be empty (use null for none)") }
      }
      if let from {
        do {
          try EmailMessage.validateAddress(from, what: "notifications.smtp.from")
        } catch let e as BackupError {
          throw BackupError(.usage, e.message, hint: e.hint)
        }
      }
    }

    /// The settings to send with, the password resolved now (`${VAR}` from the environment,
    /// else `passwordFile`). Errors name the key to set.
    public func settings(environment: [String: String] = ProcessInfo.processInfo.environment) throws
      -> (settings: SMTPSettings, from: String)
    {
      guard let host else {
        throw BackupError(
          .usage, "notifications.smtp.host is not set",
          hint: "ai-shell backup config --set notifications.smtp.host=mail.example.com")
      }
      guard let from else {
        throw BackupError(
          .usage, "notifications.smtp.from is not set",
          hint: "ai-shell backup config --set notifications.smtp.from=backup@example.com")
      }
      var secret: String?
      if let password {
        secret = try ConnectionURL.expandVariables(
          password, environment: environment, what: "notifications.smtp.password")
      } else if let passwordFile {
        guard let data = FileManager.default.contents(atPath: passwordFile) else {
          throw BackupError(
            .notFound, "cannot read the SMTP password file \(passwordFile) (notifications.smtp.passwordFile)")
        }
        secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .newlines)
      }
      return (
        SMTPSettings(
          host: host, port: port, security: tls, username: username, password: secret, caFile: caFile), from
      )
    }
  }

  public struct Encryption: Codable, Equatable, Sendable {
    /// age recipients ("age1...") that `create --encrypt` uses when no --recipient is given.
    public var recipients: [String] = []
    /// The age identity file used to decrypt when no --identity is given.
    public var identityFile: String?
    public init(recipients: [String] = [], identityFile: String? = nil) {
      self.recipients = recipients
      self.identityFile = identityFile
    }
    enum CodingKeys: String, CodingKey, CaseIterable { case recipients, identityFile }
    public init(from decoder: Decoder) throws {
      try rejectUnknownKeys(decoder, CodingKeys.self, in: "encryption")
      let c = try decoder.container(keyedBy: CodingKeys.self)
      recipients = try c.decodeIfPresent([String].self, forKey: .recipients) ?? []
      identityFile = try c.decodeIfPresent(String.self, forKey: .identityFile)
    }
    public func encode(to encoder: Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(recipients, forKey: .recipients)
      if let identityFile {
        try c.encode(identityFile, forKey: .identityFile)
      } else {
        try c.encodeNil(forKey: .identityFile)
      }
    }
  }

  public struct Connection: Codable, Equatable, Sendable {
    /// The URL without an inline password; `${ENV_VAR}` references are resolved at use time.
    public var url: String
    /// A file (mode 0600) holding the password, when one was given.
    public var passwordFile: String?
    public init(url: String, passwordFile: String? = nil) {
      self.url = url
      self.passwordFile = passwordFile
    }
    enum CodingKeys: String, CodingKey, CaseIterable { case url, passwordFile }
    public init(from decoder: Decoder) throws {
      try rejectUnknownKeys(decoder, CodingKeys.self, in: "connections.<name>")
      let c = try decoder.container(keyedBy: CodingKeys.self)
      url = try c.decode(String.self, forKey: .url)
      passwordFile = try c.decodeIfPresent(String.self, forKey: .passwordFile)
    }
    public func encode(to encoder: Encoder) throws {
      var c = encoder.container(keyedBy: CodingKeys.self)
      try c.encode(url, forKey: .url)
      try c.encodeIfPresent(passwordFile, forKey: .passwordFile)
    }
  }

  public init() {}

  enum CodingKeys: String, CodingKey, CaseIterable {
    case backupDir, retentionDays, maxBackups, cloudProvider, cloudConfig, keepLocalCopy, compression,
      compressionLevel
    case format, lockTimeoutSeconds, encryption, connections, schedules, notifications
  }

  public static var keys: [String] { CodingKeys.allCases.map(\.rawValue) }

  public init(from decoder: Decoder) throws {
    try rejectUnknownKeys(decoder, CodingKeys.self, in: nil)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let d = Config.defaults
    backupDir = try c.decodeIfPresent(String.self, forKey: .backupDir)
    retentionDays = try c.decodeIfPresent(Int.self, forKey: .retentionDays) ?? d.retentionDays
    maxBackups = try c.decodeIfPresent(Int.self, forKey: .maxBackups) ?? d.maxBackups
    cloudProvider = try c.decodeIfPresent(CloudProvider.self, forKey: .cloudProvider) ?? d.cloudProvider
    cloudConfig = try c.decodeIfPresent([String: JSONValue].self, forKey: .cloudConfig) ?? [:]
    keepLocalCopy = try c.decodeIfPresent(Bool.self, forKey: .keepLocalCopy) ?? d.keepLocalCopy
    compression = try c.decodeIfPresent(CompressionAlgorithm.self, forKey: .compression) ?? d.compression
    compressionLevel = try c.decodeIfPresent(Int.self, forKey: .compressionLevel)
    format = try c.decodeIfPresent(DumpFormat.self, forKey: .format) ?? d.format
    lockTimeoutSeconds =
      try c.decodeIfPresent(Double.self, forKey: .lockTimeoutSeconds) ?? d.lockTimeoutSeconds
    encryption = try c.decodeIfPresent(Encryption.self, forKey: .encryption) ?? Encryption()
    connections = try c.decodeIfPresent([String: Connection].self, forKey: .connections) ?? [:]
    schedules = try c.decodeIfPresent([String: Schedule].self, forKey: .schedules) ?? [:]
    notifications = try c.decodeIfPresent(Notifications.self, forKey: .notifications) ?? Notifications()
  }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    if let backupDir {
      try c.encode(backupDir, forKey: .backupDir)
    } else {
      try c.encodeNil(forKey: .backupDir)
    }
    try c.encode(retentionDays, forKey: .retentionDays)
    try c.encode(maxBackups, forKey: .maxBackups)
    try c.encode(cloudProvider, forKey: .cloudProvider)
    try c.encode(cloudConfig, forKey: .cloudConfig)
    try c.encode(keepLocalCopy, forKey: .keepLocalCopy)
    try c.encode(compression, forKey: .compression)
    if let compressionLevel {
      try c.encode(compressionLevel, forKey: .compressionLevel)
    } else {
      try c.encodeNil(forKey: .compressionLevel)
    }
    try c.encode(format, forKey: .format)
    try c.encode(lockTimeoutSeconds, forKey: .lockTimeoutSeconds)
    try c.encode(encryption, forKey: .encryption)
    try c.encode(connections, forKey: .connections)
    try c.encode(schedules, forKey: .schedules)
    try c.encode(notifications, forKey: .notifications)
  }

  public static let defaults = Config()

  // MARK: parsing and validation

  /// Parses config JSON; any problem is a one-line `.usage` error naming the key.
  public static func parse(_ data: Data, source: String) throws -> Config {
    let config: Config
    do {
      config = try JSONDecoder().decode(Config.self, from: data)
    } catch let e as BackupError {
      throw BackupError(e.status, "\(source): \(e.message)", hint: e.hint)
    } catch let e as DecodingError {
      throw BackupError(.usage, "\(source): \(describe(e))")
    } catch {
      throw BackupError(.usage, "\(source) is not valid JSON")
    }
    do {
      try config.validate()
    } catch let e as BackupError {
      throw BackupError(e.status, "\(source): \(e.message)", hint: e.hint)
    }
    return config
  }

  static func describe(_ e: DecodingError) -> String {
    func path(_ p: [CodingKey]) -> String {
      p.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        .replacingOccurrences(of: ".[", with: "[")
    }
    switch e {
    case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx):
      return "\(path(ctx.codingPath)) has the wrong type (\(ctx.debugDescription))"
    case .keyNotFound(let key, let ctx):
      return "\(path(ctx.codingPath + [key])) is missing"
    case .dataCorrupted(let ctx):
      if ctx.codingPath.isEmpty { return "not valid JSON" }
      let key = path(ctx.codingPath)
      if let allowed = allowedValues[ctx.codingPath.last?.stringValue ?? ""] {
        return "invalid value for \(key); allowed: \(allowed.joined(separator: ", "))"
      }
      return "invalid value for \(key)"
    @unknown default:
      return "not a valid config"
    }
  }

  /// The allowed values of the enum keys.
  public static let allowedValues: [String: [String]] = [
    "cloudProvider": CloudProvider.allCases.map(\.rawValue),
    "compression": CompressionAlgorithm.allCases.map(\.rawValue),
    "format": DumpFormat.allCases.map(\.rawValue),
    "tls": SMTPSecurity.allCases.map(\.rawValue),
  ]

  /// Checks values the types do not: ranges, age recipients, connection names and URLs.
  public func validate() throws {
    func bad(_ key: String, _ why: String) -> BackupError { BackupError(.usage, "invalid \(key): \(why)") }
    guard retentionDays >= 0 else { throw bad("retentionDays", "must be a whole number >= 0") }
    guard maxBackups >= 0 else { throw bad("maxBackups", "must be a whole number >= 0") }
    guard lockTimeoutSeconds >= 0, lockTimeoutSeconds.isFinite else {
      throw bad("lockTimeoutSeconds", "must be a number >= 0")
    }
    if let level = compressionLevel {
      let range = Codecs.levelRange(compression)
      guard range.contains(level) else {
        throw bad(
          "compressionLevel",
          "\(level) is out of range for \(compression.rawValue) (\(range.lowerBound)...\(range.upperBound))")
      }
    }
    if let dir = backupDir, dir.isEmpty {
      throw bad("backupDir", "must not be empty (use null for the default)")
    }
    for (key, value) in cloudConfig {
      switch value {
      case .string, .bool, .number: break
      default: throw bad("cloudConfig.\(key)", "must be a string, a boolean or a number")
      }
    }
    try CloudConfig.validate(self)
    for r in encryption.recipients {
      guard r.hasPrefix("age1") else {
        throw bad("encryption.recipients", "\"\(r)\" is not an age recipient (they start with age1)")
      }
      do {
        _ = try Age.parseRecipient(r)
      } catch {
        throw bad("encryption.recipients", "\"\(r)\" is not a valid age recipient")
      }
    }
    if let f = encryption.identityFile, f.isEmpty {
      throw bad("encryption.identityFile", "must not be empty (use null for none)")
    }
    for (name, c) in connections {
      try ConnectionURL.validateName(name)
      do {
        try ConnectionURL.validateStored(c.url)
      } catch let e as BackupError {
        throw bad("connections.\(name).url", e.message)
      }
    }
    try notifications.smtp.validate()
    for (name, schedule) in schedules {
      try Schedule.validateName(name)
      try schedule.validate(key: "schedules.\(name)", config: self)
    }
  }
}

private struct AnyKey: CodingKey {
  var stringValue: String
  var intValue: Int? { nil }
  init(stringValue: String) { self.stringValue = stringValue }
  init?(intValue: Int) { nil }
}

/// An unknown key in the config is an error naming it and the known keys.
func rejectUnknownKeys<K: CodingKey & CaseIterable>(_ decoder: Decoder, _: K.Type, in parent: String?)
  throws
{
  let c = try decoder.container(keyedBy: AnyKey.self)
  let known = Set(K.allCases.map(\.stringValue))
  for key in c.allKeys where !known.contains(key.stringValue) {
    let name = parent.map { "\($0).\(key.stringValue)" } ?? key.stringValue
    throw BackupError(
      .usage, "unknown config key \"\(name)\"",
      hint: "known keys: \(K.allCases.map(\.stringValue).joined(separator: ", "))")
  }
}
