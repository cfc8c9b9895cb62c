import ArgumentParser
import BackupCore
import BackupModel
import Foundation
import Logging

extension CompressionAlgorithm: ExpressibleByArgument {}
extension DumpFormat: ExpressibleByArgument {}

/// Flags every backup command shares.
struct CommonOptions: ParsableArguments {
  @Option(
    name: .customLong("backup-dir"),
    help: ArgumentHelp(
      "Backup directory (default: $AI_SHELL_BACKUP_DIR, else $XDG_DATA_HOME/ai-shell/backups).",
      valueName: "path"))
  var backupDir: String?

  @Flag(help: "Print machine-readable JSON on stdout.")
  var json = false

  @Option(
    name: .customLong("config"),
    help: ArgumentHelp(
      "Config file (default: $AI_SHELL_CONFIG, else $XDG_CONFIG_HOME/ai-shell/config.json).",
      valueName: "path"))
  var configPath: String?

  func service(verbose: Bool = false) -> BackupService {
    var logger = Logger(label: "ai-shell") { StreamLogHandler.standardError(label: $0) }
    logger.logLevel = verbose ? .info : .warning
    if ProcessInfo.processInfo.environment["AI_SHELL_DEBUG"] != nil { logger.logLevel = .debug }
    return BackupService(backupDirectory: effectiveBackupDirectory(), logger: logger)
  }
}

/// Splits `a,b,c` into names; empty items are a usage error.
func parseTableList(_ value: String?) throws -> [String]? {
  guard let value else { return nil }
  let names = value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
  guard !names.isEmpty, names.allSatisfy({ !$0.isEmpty }) else {
    throw ValidationError("--tables needs comma-separated table names, got \"\(value)\"")
  }
  return names
}

func isTerminal(_ fd: Int32) -> Bool { isatty(fd) != 0 }

/// Keys for reading encrypted backups (restore, verify, status --verify).
struct DecryptOptions: ParsableArguments {
  @Option(
    name: .customLong("identity"),
    help: ArgumentHelp("An age identity file (age-keygen format); repeatable.", valueName: "file"))
  var identityFiles: [String] = []

  @Option(
    help: ArgumentHelp(
      "Read the age passphrase from this file (else from $AI_SHELL_PASSPHRASE; never a flag value).",
      valueName: "file"))
  var passphraseFile: String?

  /// `--identity` files, else the config's `encryption.identityFile`; and the passphrase.
  func keys(configured identityFile: String?) throws -> DecryptionKeys {
    let files =
      identityFiles.isEmpty
      ? identityFile.map { [($0 as NSString).expandingTildeInPath] } ?? [] : identityFiles
    return DecryptionKeys(identityFiles: files, passphrase: try SecretSource.passphrase(file: passphraseFile))
  }
}
