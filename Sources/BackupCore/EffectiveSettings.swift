import BackupModel
import Foundation

extension BackupDirectory {
  /// The backup directory with the config file in the chain: `--backup-dir`, then
  /// `AI_SHELL_BACKUP_DIR`, then the config's `backupDir`, then the XDG default.
  public static func resolve(
    flag: String?, configured: String?, environment: [String: String] = ProcessInfo.processInfo.environment
  ) -> String {
    if let flag, !flag.isEmpty { return absolute(flag) }
    if let env = environment["AI_SHELL_BACKUP_DIR"], !env.isEmpty { return absolute(env) }
    if let configured, !configured.isEmpty { return absolute(configured) }
    return resolve(flag: nil, environment: environment)
  }
}

/// The settings of `backup create` after precedence: command-line flag > config file > default.
public struct CreateDefaults: Sendable, Equatable {
  public var compression: CompressionAlgorithm
  public var level: Int?
  public var format: DumpFormat
  public var lockTimeoutSeconds: Double

  /// `compressionLevel` from the config applies only when the config's compression is the one in
  /// use (a zstd level means nothing to gzip).
  public static func resolve(
    compression: CompressionAlgorithm?, level: Int?, format: DumpFormat?, lockTimeoutSeconds: Double?,
    config: Config
  ) -> CreateDefaults {
    let algorithm = compression ?? config.compression
    let configLevel = algorithm == config.compression ? config.compressionLevel : nil
    return CreateDefaults(
      compression: algorithm, level: level ?? configLevel, format: format ?? config.format,
      lockTimeoutSeconds: lockTimeoutSeconds ?? config.lockTimeoutSeconds)
  }
}
