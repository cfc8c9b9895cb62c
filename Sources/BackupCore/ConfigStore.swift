import BackupModel
import BackupNotify
import BackupStorage
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The config file on disk: where it is, reading it (defaults when missing), and writing it
/// atomically with mode 0600 (its directory 0700). Inline passwords never reach it: they are
/// moved into `<config dir>/secrets/<connection>.password` (0600).
public final class ConfigStore {
  public let path: String
  public var directory: String { (path as NSString).deletingLastPathComponent }
  public var fileName: String { (path as NSString).lastPathComponent }
  public var secretsDirectory: String { (directory as NSString).appendingPathComponent("secrets") }

  public init(path: String) {
    self.path = BackupDirectory.absolute(path)
  }

  /// `--config`, else `$AI_SHELL_CONFIG`, else `$XDG_CONFIG_HOME/ai-shell/config.json`
  /// (default `~/.config/ai-shell/config.json`).
  public static func resolvePath(
    flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment
  ) -> String {
    if let flag, !flag.isEmpty { return BackupDirectory.absolute(flag) }
    if let env = environment["AI_SHELL_CONFIG"], !env.isEmpty { return BackupDirectory.absolute(env) }
    let configHome =
      environment["XDG_CONFIG_HOME"].flatMap { $0.isEmpty ? nil : $0 }
      ?? (environment["HOME"] ?? NSHomeDirectory()) + "/.config"
    return BackupDirectory.absolute(configHome) + "/ai-shell/config.json"
  }

  public var exists: Bool { FileManager.default.fileExists(atPath: path) }

  /// The config, or the defaults when the file does not exist yet.
  public func load() throws -> Config {
    guard exists else { return Config() }
    guard let data = FileManager.default.contents(atPath: path) else {
      throw BackupError(.storage, "cannot read config file \(path)")
    }
    return try Config.parse(data, source: "config file \(path)")
  }

  /// Validates, moves inline passwords out, and writes atomically (temp, fsync, rename).
  public func save(_ config: Config) throws {
    var config = config
    try config.validate()
    try ensureDirectory(directory)
    for (name, connection) in config.connections {
      config.connections[name] = try storingPassword(name: name, connection)
    }
    config.notifications.smtp = try storingSMTPPassword(config.notifications.smtp)
    let data = try Self.encode(config)
    try LocalStore(directory: directory).writeAtomically(fileName, data)
    chmod(path, 0o600)
  }

  public static func encode(_ config: Config) throws -> Data {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    var data = try encoder.encode(config)
    data.append(0x0A)
    return data
  }

  func ensureDirectory(_ dir: String) throws {
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) {
      guard isDir.boolValue else { throw BackupError(.storage, "\(dir) is not a directory") }
      return
    }
    do {
      try FileManager.default.createDirectory(
        atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    } catch {
      throw BackupError(.storage, "cannot create \(dir): \(error.localizedDescription)")
    }
  }

  /// A connection whose URL holds an inline password comes back without it, the password written
  /// to a 0600 file.
  func storingPassword(name: String, _ connection: Config.Connection) throws -> Config.Connection {
    guard let parsed = try? ConnectionURL.parse(connection.url), let password = parsed.password,
      !password.contains("${")
    else { return connection }
    try ensureDirectory(secretsDirectory)
    chmod(secretsDirectory, 0o700)
    let secretName = "\(name).password"
    try LocalStore(directory: secretsDirectory).writeAtomically(secretName, Data(password.utf8))
    let secretPath = (secretsDirectory as NSString).appendingPathComponent(secretName)
    chmod(secretPath, 0o600)
    return Config.Connection(url: parsed.text(password: .omit), passwordFile: secretPath)
  }

  /// The SMTP settings with an inline password moved to `secrets/-notifications.smtp.password`
  /// (0600) and
  /// recorded as `passwordFile`; a `${VAR}` reference stays. The file this store wrote is removed
  /// once no setting refers to it any more.
  func storingSMTPPassword(_ smtp: Config.SMTP) throws -> Config.SMTP {
    var smtp = smtp
    let secretPath = (secretsDirectory as NSString).appendingPathComponent(Self.smtpSecretName)
    if let password = smtp.password, !password.contains("${") {
      try ensureDirectory(secretsDirectory)
      chmod(secretsDirectory, 0o700)
      try LocalStore(directory: secretsDirectory).writeAtomically(Self.smtpSecretName, Data(password.utf8))
      chmod(secretPath, 0o600)
      smtp.password = nil
      smtp.passwordFile = secretPath
    }
    if smtp.passwordFile != secretPath { unlink(secretPath) }
    return smtp
  }

  /// Connection names cannot start with `-`, so this never collides with `<connection>.password`.
  static let smtpSecretName = "-notifications.smtp.password"

  /// Removes a password file this store created (one inside its secrets directory).
  func removeSecret(_ connection: Config.Connection) {
    guard let file = connection.passwordFile,
      (file as NSString).deletingLastPathComponent == secretsDirectory
    else { return }
    unlink(file)
  }

  // MARK: get / set / reset

  /// The config as a JSON tree, every key present.
  public static func tree(_ config: Config) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: try encode(config))
  }

  /// The config as shown to a user: inline URL passwords and values of secret-looking keys as
  /// `***`.
  public static func redacted(_ config: Config) throws -> JSONValue {
    var t = try tree(config)
    for (name, c) in config.connections {
      t.set(.string(ConnectionURL.redact(c.url)), at: ["connections", name, "url"])
    }
    return redact(t, path: [])
  }

  static let secretWords = ["password", "secret", "token", "key"]

  static func isSecretKey(_ key: String) -> Bool {
    let k = key.lowercased()
    // where a secret lives, public keys, and key identifiers (cloudConfig.kmsKeyId) are not secrets
    if k.hasSuffix("file") || k.hasSuffix("path") || k == "recipients" || k.hasSuffix("keyid") {
      return false
    }
    return secretWords.contains { k.contains($0) }
  }

  /// `${NAME}` alone: it names where the secret is, it is not one.
  static func isVariableReference(_ v: JSONValue) -> Bool {
    guard case .string(let s) = v, s.hasPrefix("${"), s.hasSuffix("}") else { return false }
    let name = s.dropFirst(2).dropLast()
    return !name.isEmpty && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
  }

  static func redact(_ value: JSONValue, path: [String]) -> JSONValue {
    switch value {
    case .object(let o):
      var out: [String: JSONValue] = [:]
      for (k, v) in o {
        if isSecretKey(k), v != .null, !isVariableReference(v) {
          out[k] = .string("***")
        } else {
          out[k] = redact(v, path: path + [k])
        }
      }
      return .object(out)
    case .array(let a):
      return .array(a.map { redact($0, path: path) })
    default:
      return value
    }
  }

  /// `config --get key`: the (redacted) value at a dotted key.
  public static func get(_ config: Config, key: String) throws -> JSONValue {
    let path = try checkKey(key, forSet: false)
    let t = try redacted(config)
    guard let v = t.value(at: path) else {
      throw BackupError(.notFound, "config key \"\(key)\" is not set")
    }
    return v
  }

  /// Splits and checks a dotted key; throws a one-line usage error naming the known keys.
  static func checkKey(_ key: String, forSet: Bool) throws -> [String] {
    let path = key.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
    guard let first = path.first, !path.contains(where: \.isEmpty), Config.keys.contains(first) else {
      throw BackupError(
        .usage, "unknown config key \"\(key)\"", hint: "known keys: \(Config.keys.joined(separator: ", "))")
    }
    switch first {
    case "cloudConfig":
      guard path.count <= 2 else {
        throw BackupError(
          .usage, "unknown config key \"\(key)\"", hint: "cloudConfig values are one level deep")
      }
    case "encryption":
      guard path.count == 1 || (path.count == 2 && ["recipients", "identityFile"].contains(path[1])) else {
        throw BackupError(
          .usage, "unknown config key \"\(key)\"",
          hint: "known keys: encryption.recipients, encryption.identityFile")
      }
      if forSet && path.count == 1 {
        throw BackupError(.usage, "set encryption.recipients or encryption.identityFile, not encryption")
      }
    case "schedules":
      if forSet {
        throw BackupError(.usage, "schedules are changed with `ai-shell backup schedule`")
      }
    case "notifications":
      let known = Config.SMTP.keys.map { "notifications.smtp.\($0)" }
      guard
        path.count == 1
          || (path[1] == "smtp"
            && (path.count == 2 || (path.count == 3 && Config.SMTP.keys.contains(path[2]))))
      else {
        throw BackupError(
          .usage, "unknown config key \"\(key)\"", hint: "known keys: \(known.joined(separator: ", "))")
      }
      if forSet && path.count < 3 {
        throw BackupError(.usage, "set one key at a time: \(known.joined(separator: ", "))")
      }
    case "connections":
      if forSet {
        throw BackupError(
          .usage, "connections are changed with `ai-shell connection add` / `connection remove`")
      }
    default:
      guard path.count == 1 else {
        throw BackupError(.usage, "unknown config key \"\(key)\"", hint: "\(first) has no sub-keys")
      }
    }
    return path
  }

  /// Applies `key=value` assignments to a copy of `config` and validates the result; the caller
  /// saves it. Every error is one line naming the key and what it accepts.
  public static func applying(_ assignments: [String], to config: Config) throws -> Config {
    var t = try tree(config)
    for assignment in assignments {
      guard let eq = assignment.firstIndex(of: "=") else {
        throw BackupError(.usage, "--set needs key=value, got \"\(assignment)\"")
      }
      let key = String(assignment[..<eq])
      let text = String(assignment[assignment.index(after: eq)...])
      let path = try checkKey(key, forSet: true)
      t.set(try parseValue(text, key: key, path: path), at: path)
      // a new password (or none) replaces the stored password file
      if key == "notifications.smtp.password" { t.set(.null, at: ["notifications", "smtp", "passwordFile"]) }
    }
    let data = try JSONEncoder().encode(t)
    return try Config.parse(data, source: "config")
  }

  static func parseValue(_ text: String, key: String, path: [String]) throws -> JSONValue {
    func wholeNumber() throws -> JSONValue {
      guard let n = Int(text), n >= 0 else {
        throw BackupError(.usage, "invalid value \"\(text)\" for \(key): expected a whole number >= 0")
      }
      return .number(Double(n))
    }
    func choice() throws -> JSONValue {
      let allowed = Config.allowedValues[key]!
      guard allowed.contains(text) else {
        throw BackupError(
          .usage, "invalid value \"\(text)\" for \(key); allowed: \(allowed.joined(separator: ", "))")
      }
      return .string(text)
    }
    switch path[0] {
    case "backupDir":
      return text.isEmpty || text == "null" ? .null : .string(BackupDirectory.absolute(text))
    case "retentionDays", "maxBackups":
      return try wholeNumber()
    case "compressionLevel":
      return text.isEmpty || text == "null" ? .null : try wholeNumber()
    case "lockTimeoutSeconds":
      guard let n = Double(text), n >= 0, n.isFinite else {
        throw BackupError(.usage, "invalid value \"\(text)\" for \(key): expected a number of seconds >= 0")
      }
      return .number(n)
    case "cloudProvider", "compression", "format":
      return try choice()
    case "keepLocalCopy":
      guard text == "true" || text == "false" else {
        throw BackupError(.usage, "invalid value \"\(text)\" for \(key): expected true or false")
      }
      return .bool(text == "true")
    case "cloudConfig":
      if path.count == 1 {
        guard let data = text.data(using: .utf8),
          let v = try? JSONDecoder().decode(JSONValue.self, from: data),
          case .object = v
        else {
          throw BackupError(.usage, "invalid value for cloudConfig: expected a JSON object such as {}")
        }
        return v
      }
      if text == "true" { return .bool(true) }
      if text == "false" { return .bool(false) }
      if let n = Double(text), n.isFinite, text.first.map({ $0.isNumber || $0 == "-" }) == true {
        return .number(n)
      }
      return .string(text)
    case "encryption":
      if path[1] == "identityFile" {
        return text.isEmpty || text == "null" ? .null : .string(BackupDirectory.absolute(text))
      }
      if text.hasPrefix("["), let v = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) {
        return v
      }
      let items = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
        !$0.isEmpty
      }
      return .array(items.map { .string($0) })
    case "notifications":
      return try parseSMTPValue(text, key: key, name: path[2])
    default:
      throw BackupError(.usage, "unknown config key \"\(key)\"")
    }
  }

  static func parseSMTPValue(_ text: String, key: String, name: String) throws -> JSONValue {
    if text.isEmpty || text == "null" { return name == "tls" ? .string("starttls") : .null }
    switch name {
    case "port":
      guard let n = Int(text), (1...65535).contains(n) else {
        throw BackupError(.usage, "invalid value \"\(text)\" for \(key): expected a port number 1...65535")
      }
      return .number(Double(n))
    case "tls":
      let allowed = SMTPSecurity.allCases.map(\.rawValue)
      guard allowed.contains(text) else {
        throw BackupError(
          .usage, "invalid value \"\(text)\" for \(key); allowed: \(allowed.joined(separator: ", "))")
      }
      return .string(text)
    case "passwordFile":
      return .string(BackupDirectory.absolute(text))
    case "caFile":
      let path = BackupDirectory.absolute(text)
      guard let data = FileManager.default.contents(atPath: path) else {
        throw BackupError(
          .notFound, "cannot read \(path) (\(key))", hint: "give a PEM file of CA certificates")
      }
      guard String(decoding: data, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
        throw BackupError(
          .usage, "\(path) holds no PEM certificate (\(key))", hint: "give a PEM file of CA certificates")
      }
      return .string(path)
    default:
      return .string(text)
    }
  }

  /// `config --reset`: the defaults, nothing kept (password files this store wrote are removed).
  public func reset() throws {
    if let old = try? load() {
      for c in old.connections.values { removeSecret(c) }
    }
    unlink((secretsDirectory as NSString).appendingPathComponent(Self.smtpSecretName))
    try save(Config())
  }

  // MARK: connections

  public func addConnection(name: String, url: String, replace: Bool) throws -> Config.Connection {
    try ConnectionURL.validateName(name)
    var config = try load()
    if let existing = config.connections[name] {
      guard replace else {
        throw BackupError(
          .refused, "connection \"\(name)\" already exists", hint: "remove it first or use --force")
      }
      removeSecret(existing)
    }
    var text = url
    try ConnectionURL.validateStored(url)
    if !url.contains("${"), let parsed = try? ConnectionURL.parse(url), parsed.engine == "sqlite" {
      text = parsed.text(password: .omit)
    }
    config.connections[name] = Config.Connection(url: text)
    try save(config)
    return try load().connections[name]!
  }

  public func removeConnection(name: String) throws -> Config.Connection {
    var config = try load()
    guard let existing = config.connections.removeValue(forKey: name) else {
      throw BackupError(
        .notFound, "no connection named \"\(name)\"", hint: "`ai-shell connection list` shows them")
    }
    try save(config)
    removeSecret(existing)
    return existing
  }
}

/// A database named by `--database` or `connection test`: a connection name from the config, a
/// URL or a SQLite path, with `${ENV_VAR}` references resolved.
public struct ResolvedDatabase: Sendable {
  /// The connection name, when a configured connection was used.
  public var connection: String?
  /// The URL with variables resolved (may hold a secret: never print it; use `display`).
  public var url: String
  /// The URL for messages, password redacted.
  public var display: String
  public var parsed: ConnectionURL
  /// From the connection's password file, for engines that need one.
  public var password: String?

  /// Connection name first (when it exists in the config), else a URL or a path.
  public static func resolve(
    _ text: String, config: Config, environment: [String: String] = ProcessInfo.processInfo.environment
  ) throws -> ResolvedDatabase {
    if let c = config.connections[text] {
      let url = try ConnectionURL.expandVariables(c.url, environment: environment)
      var password: String?
      if let file = c.passwordFile {
        guard let data = FileManager.default.contents(atPath: file) else {
          throw BackupError(.notFound, "password file \(file) of connection \"\(text)\" cannot be read")
        }
        password = String(decoding: data, as: UTF8.self)
      }
      return ResolvedDatabase(
        connection: text, url: url, display: ConnectionURL.redact(c.url),
        parsed: try ConnectionURL.parse(url),
        password: password)
    }
    let parsed = try ConnectionURL.parse(text)
    return ResolvedDatabase(
      connection: nil, url: text, display: ConnectionURL.redact(text), parsed: parsed,
      password: parsed.password)
  }

  /// The configured connection whose database is `location` (a manifest's password-free
  /// `database.location`), so that `verify --test` reaches the server with that connection's
  /// password (from its secrets file or `${VAR}`); nil when no connection matches.
  public static func connection(
    forLocation location: String, config: Config,
    environment: [String: String] = ProcessInfo.processInfo.environment
  ) -> ResolvedDatabase? {
    for name in config.connections.keys.sorted() {
      guard let r = try? resolve(name, config: config, environment: environment),
        r.parsed.engine != "sqlite",
        let l = try? DatabaseLocator(r.locatorText), l.location == location
      else { continue }
      var found = r
      found.password = r.password ?? r.parsed.password
      found.parsed.password = nil
      return found
    }
    return nil
  }

  /// What `DatabaseLocator` accepts: the SQLite path, or the URL for other engines.
  public var locatorText: String { parsed.engine == "sqlite" ? parsed.database : url }

  /// Hands a password from the connection's password file to the engine's client library the
  /// way it reads one (`PGPASSWORD`, `MYSQL_PWD`), unless the environment already sets it.
  public func exportPassword() {
    guard let password, parsed.password == nil else { return }
    let variable: String
    switch parsed.engine {
    case "postgres": variable = "PGPASSWORD"
    case "mysql", "mariadb": variable = "MYSQL_PWD"
    default: return
    }
    if ProcessInfo.processInfo.environment[variable] == nil { setenv(variable, password, 1) }
  }

  /// Connects through the engine (`DatabaseLocator` refuses engines this version lacks).
  public func probe() throws -> Probe {
    exportPassword()
    let locator = try DatabaseLocator(locatorText)
    let p = try locator.engine().probe()
    return Probe(
      engine: p.engine.rawValue, serverVersion: p.serverVersion, sizeBytes: p.sizeBytes, tables: p.tables)
  }

  public struct Probe: Codable, Sendable {
    public var engine: String
    public var serverVersion: String
    public var sizeBytes: Int64?
    public var tables: [String]
  }
}
