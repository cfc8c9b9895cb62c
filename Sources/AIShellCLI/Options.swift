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

/// `--jobs` must be 1 or more (nil: the default).
func validateJobs(_ jobs: Int?) throws {
  if let jobs, jobs < 1 { throw ValidationError("--jobs must be 1 or more, got \(jobs)") }
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

/// `--encrypt` and where its keys come from (create, export).
struct EncryptOptions: ParsableArguments {
  @Flag(help: "Encrypt the backup file with age (to --recipient keys or a passphrase).")
  var encrypt = false

  @Option(
    name: .customLong("recipient"),
    help: ArgumentHelp("An age public key (age1...) to encrypt to; repeatable.", valueName: "age1..."))
  var recipients: [String] = []

  @Option(help: ArgumentHelp("A file of age public keys, one per line; repeatable.", valueName: "file"))
  var recipientsFile: [String] = []

  @Option(
    help: ArgumentHelp(
      "Encrypt with the passphrase in this file (else $AI_SHELL_PASSPHRASE; never a flag value).",
      valueName: "file"))
  var passphraseFile: String?

  func validate() throws {
    if !encrypt && (!recipients.isEmpty || !recipientsFile.isEmpty || passphraseFile != nil) {
      throw ValidationError("--recipient, --recipients-file and --passphrase-file need --encrypt")
    }
  }

  /// The recipients (flags, else the config's `encryption.recipients`), or a passphrase when
  /// there is no key; nil without --encrypt.
  func request(config: Config) throws -> EncryptionRequest? {
    guard encrypt else { return nil }
    var keys = try SecretSource.recipients(recipients, files: recipientsFile)
    if keys.isEmpty && passphraseFile == nil { keys = config.encryption.recipients }
    if !keys.isEmpty && passphraseFile != nil {
      throw BackupError(.usage, "an age passphrase cannot be combined with --recipient keys")
    }
    let passphrase = keys.isEmpty ? try SecretSource.passphrase(file: passphraseFile) : nil
    return EncryptionRequest(
      recipients: keys, passphrase: passphrase, workFactor: try SecretSource.workFactor())
  }
}
