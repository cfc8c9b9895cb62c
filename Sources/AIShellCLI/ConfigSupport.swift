import ArgumentParser
import BackupCore
import BackupModel
import Foundation

/// The config file behind the common options: precedence flag > environment > config > default.
extension CommonOptions {
  var configStore: ConfigStore { ConfigStore(path: ConfigStore.resolvePath(flag: configPath)) }

  func loadConfig() throws -> Config { try configStore.load() }

  /// `--backup-dir` > `AI_SHELL_BACKUP_DIR` > config `backupDir` > `$XDG_DATA_HOME/ai-shell/backups`.
  /// A config file that does not parse stops the command (its error and exit code).
  func effectiveBackupDirectory() -> String {
    if let backupDir, !backupDir.isEmpty { return BackupDirectory.resolve(flag: backupDir) }
    do {
      return BackupDirectory.resolve(flag: nil, configured: try loadConfig().backupDir)
    } catch let error as BackupError {
      printError(error.description)
      Foundation.exit(error.status.rawValue)
    } catch {
      printError("\(error)")
      Foundation.exit(ExitStatus.failure.rawValue)
    }
  }

  /// `--database`: a connection name from the config first, else a URL or a SQLite path; what
  /// `DatabaseLocator` accepts.
  func resolveDatabase(_ text: String) throws -> String {
    let resolved = try ResolvedDatabase.resolve(text, config: try loadConfig())
    resolved.exportPassword()
    return resolved.locatorText
  }

  /// `backup create` settings: flag > config > default.
  func createDefaults(
    compression: CompressionAlgorithm?, level: Int?, format: DumpFormat?, lockTimeout: Double?
  ) throws -> CreateDefaults {
    CreateDefaults.resolve(
      compression: compression, level: level, format: format, lockTimeoutSeconds: lockTimeout,
      config: try loadConfig())
  }
}
