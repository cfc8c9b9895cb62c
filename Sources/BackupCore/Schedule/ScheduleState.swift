import BackupModel
import BackupStorage
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The result of a schedule's last run, kept in `<backupDir>/.schedules-state.json` so the config
/// file stays what the user wrote (the scheduler never rewrites it).
public struct ScheduleRunRecord: Codable, Equatable, Sendable {
  public enum Status: String, Codable, Sendable {
    case running, success, failed
  }
  public var id: String?
  public var status: Status
  /// When the run started.
  public var at: Date
  public var finishedAt: Date?
  public var error: String?

  public init(id: String? = nil, status: Status, at: Date, finishedAt: Date? = nil, error: String? = nil) {
    self.id = id
    self.status = status
    self.at = at
    self.finishedAt = finishedAt
    self.error = error
  }
}

/// The state file: schedule name -> last run. Read-modify-write happens under an flock on
/// `.schedules-state.lock`, so two processes never lose each other's updates.
public struct ScheduleState: Sendable {
  public static let fileName = ".schedules-state.json"
  static let lockName = ".schedules-state.lock"
  public let store: LocalStore

  public init(backupDirectory: String) { store = LocalStore(directory: backupDirectory) }

  static let encoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    e.dateEncodingStrategy = UTCStamp.jsonEncoding
    return e
  }()

  static let decoder: JSONDecoder = {
    let d = JSONDecoder()
    d.dateDecodingStrategy = UTCStamp.jsonDecoding
    return d
  }()

  /// Every record; an unreadable file reads as empty (it only holds history).
  public func load() -> [String: ScheduleRunRecord] {
    guard let data = try? store.readAll(Self.fileName) else { return [:] }
    return (try? Self.decoder.decode([String: ScheduleRunRecord].self, from: data)) ?? [:]
  }

  public func record(_ name: String, _ record: ScheduleRunRecord?) throws {
    try store.ensureDirectory()
    let fd = open(try store.path(of: Self.lockName), O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw BackupError(.storage, "cannot open the schedule state lock in \(store.directory)")
    }
    defer { close(fd) }
    flock(fd, LOCK_EX)
    var all = load()
    all[name] = record
    try store.writeAtomically(Self.fileName, try Self.encoder.encode(all))
  }
}

/// `.schedule-<name>.lock` in the backup directory, held with `flock(LOCK_EX|LOCK_NB)` for a
/// whole run. The kernel drops the lock when its process exits, however it exits, so a crashed
/// run never leaves a stale lock behind.
public final class ScheduleLock {
  let fd: Int32
  public let path: String

  private init(fd: Int32, path: String) {
    self.fd = fd
    self.path = path
  }

  public static func fileName(_ schedule: String) -> String { ".schedule-\(schedule).lock" }

  /// The lock, or nil when another process (or this one) holds it.
  public static func tryAcquire(backupDirectory: String, schedule: String) throws -> ScheduleLock? {
    let store = LocalStore(directory: backupDirectory)
    try store.ensureDirectory()
    let path = try store.path(of: fileName(schedule))
    let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw BackupError(.storage, "cannot open lock file \(path)") }
    guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
      close(fd)
      return nil
    }
    return ScheduleLock(fd: fd, path: path)
  }

  /// Whether some process holds the lock now.
  public static func isHeld(backupDirectory: String, schedule: String) -> Bool {
    let path = (backupDirectory as NSString).appendingPathComponent(fileName(schedule))
    let fd = open(path, O_RDWR | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    if flock(fd, LOCK_EX | LOCK_NB) == 0 {
      flock(fd, LOCK_UN)
      return false
    }
    return true
  }

  public func release() {
    flock(fd, LOCK_UN)
    close(fd)
  }
}
