import BackupEngines
import BackupModel
import Foundation

/// Where backups live. Precedence: the `--backup-dir` flag, then `AI_SHELL_BACKUP_DIR`, then
/// `$XDG_DATA_HOME/ai-shell/backups` (default `~/.local/share/ai-shell/backups`).
public enum BackupDirectory {
  public static func resolve(
    flag: String?, environment: [String: String] = ProcessInfo.processInfo.environment
  )
    -> String
  {
    if let flag, !flag.isEmpty { return absolute(flag) }
    if let env = environment["AI_SHELL_BACKUP_DIR"], !env.isEmpty { return absolute(env) }
    let dataHome =
      environment["XDG_DATA_HOME"].flatMap { $0.isEmpty ? nil : $0 }
      ?? (environment["HOME"] ?? NSHomeDirectory()) + "/.local/share"
    return absolute(dataHome) + "/ai-shell/backups"
  }

  static func absolute(_ path: String) -> String {
    let expanded = (path as NSString).expandingTildeInPath
    if expanded.hasPrefix("/") { return (expanded as NSString).standardizingPath }
    return
      ((FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(expanded) as NSString)
      .standardizingPath
  }
}

/// What `--database` named, resolved to an engine. Accepts a plain path to a SQLite file or a
/// `sqlite:///abs/path.db` URL; other engines arrive with their own issues.
public struct DatabaseLocator: Sendable {
  public var engineKind: EngineKind
  /// Canonical form recorded in manifests (an absolute path for SQLite; for PostgreSQL the URL
  /// without its password).
  public var location: String
  /// What the engine connects with (PostgreSQL: the URL as given, password included). Never
  /// recorded or printed.
  var connectionString: String?

  public init(_ text: String) throws {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    guard !trimmed.isEmpty else {
      throw BackupError(
        .usage, "--database is empty", hint: "give a SQLite file path or sqlite:///abs/path.db")
    }
    if let colon = trimmed.range(of: "://") {
      let scheme = trimmed[..<colon.lowerBound].lowercased()
      switch scheme {
      case "sqlite", "sqlite3", "file":
        let rest = String(trimmed[colon.upperBound...])
        guard rest.hasPrefix("/") else {
          throw BackupError(.usage, "\(scheme):// URL needs an absolute path (sqlite:///abs/path.db)")
        }
        let path = rest.split(separator: "?", maxSplits: 1).first.map(String.init) ?? rest
        engineKind = .sqlite
        location = BackupDirectory.absolute(path.removingPercentEncoding ?? path)
      case "postgres", "postgresql":
        engineKind = .postgres
        connectionString = trimmed
        location = PostgresEngine.redact(trimmed)
      case "mysql", "mariadb":
        engineKind = .mysql
        connectionString = trimmed
        location = MariaDBEngine.redact(trimmed)
      case "mongodb", "mongodb+srv":
        throw BackupError(
          .usage, "the \(scheme) engine is not available in this version of ai-shell",
          hint: "only SQLite, PostgreSQL and MySQL/MariaDB databases can be backed up so far")
      default:
        throw BackupError(.usage, "unknown database URL scheme \"\(scheme)\"", hint: "use a SQLite file path")
      }
    } else {
      engineKind = .sqlite
      location = BackupDirectory.absolute(trimmed)
    }
  }

  public func engine() -> BackupEngine {
    switch engineKind {
    case .sqlite: return SQLiteEngine(path: location)
    case .postgres: return PostgresEngine(url: connectionString ?? location)
    case .mysql: return MariaDBEngine(url: connectionString ?? location)
    }
  }
}
