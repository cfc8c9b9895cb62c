/// The documented process exit codes. The CLI maps every error to one of these in one place.
public enum ExitStatus: Int32, Codable, Sendable, CaseIterable {
  case success = 0
  /// Anything not covered below (a bug, an unexpected system error).
  case failure = 1
  /// A backup id, a database file or another named input does not exist.
  case notFound = 2
  /// A backup id prefix matches more than one backup.
  case ambiguous = 3
  /// A backup file or manifest is corrupt, truncated or fails a checksum.
  case corrupt = 4
  /// The database could not be opened, read or written (not a database, locked, SQL error).
  case database = 5
  /// The backup directory or a file could not be written (disk full, permissions, I/O error).
  case storage = 6
  /// A restore finished under `--continue-on-error` but some statements failed.
  case partialRestore = 7
  /// `verify` ran and at least one asked check failed.
  case verifyFailed = 8
  /// The operation was refused to protect existing data (needs `--force`, `--drop-existing`,
  /// or a confirmation that was not given).
  case refused = 9
  /// Bad command-line usage (unknown flag, bad value).
  case usage = 64

  public var summary: String {
    switch self {
    case .success: return "success"
    case .failure: return "unexpected failure"
    case .notFound: return "backup, database or file not found"
    case .ambiguous: return "backup id prefix matches more than one backup"
    case .corrupt: return "backup file or manifest corrupt or checksum mismatch"
    case .database: return "database error (cannot open, locked, SQL failure)"
    case .storage: return "storage error (disk full, permission, I/O)"
    case .partialRestore: return "restore finished with failed statements (--continue-on-error)"
    case .verifyFailed: return "verification failed"
    case .refused: return "refused to overwrite or delete without --force/--drop-existing/confirmation"
    case .usage: return "invalid command-line usage"
    }
  }
}

/// The one error type every layer throws: what went wrong, what to do, and the exit status.
/// `description` is a single line and never contains secrets.
public struct BackupError: Error, CustomStringConvertible, Sendable {
  public var status: ExitStatus
  public var message: String
  public var hint: String?

  public init(_ status: ExitStatus, _ message: String, hint: String? = nil) {
    self.status = status
    self.message = message
    self.hint = hint
  }

  public var description: String {
    let line = hint.map { "\(message); \($0)" } ?? message
    return line.replacingOccurrences(of: "\n", with: " ")
  }
}
