import BackupModel
import BackupStorage
import Foundation

/// What a crashed or failed create can leave, and `ai-shell backup cleanup` removes.
public struct CleanupItem: Codable, Sendable {
  public enum Kind: String, Codable, Sendable {
    /// A local backup file without a manifest whose writer is gone.
    case unfinishedBackup = "unfinished-backup"
    /// A temp file of an interrupted manifest write.
    case tempFile = "temp-file"
    /// An S3 multipart upload neither completed nor aborted (its parts cost storage).
    case multipartUpload = "multipart-upload"
    /// A backup file in the cloud store without its manifest (never listed as a backup).
    case orphanedObject = "orphaned-object"
    /// The local note that an upload of this machine's was not cleaned up.
    case uploadMarker = "upload-marker"
  }
  public var kind: Kind
  /// A path, or `s3://bucket/prefix/name`.
  public var location: String
  /// Why it is removed, or why it is left.
  public var reason: String
  public var startedAt: Date?
}

/// The result of `cleanup` (and of the tidy-up at the start of `create --cloud`).
public struct CleanupReport: Codable, Sendable {
  public var dryRun: Bool
  public var removed: [CleanupItem] = []
  /// Found but left alone: still being written, or too young to tell.
  public var kept: [CleanupItem] = []
}

extension BackupService {
  /// Uploads (and cloud files without a manifest) from another machine are only taken as dead
  /// after this long by default: nothing here says whether their writer still runs.
  public static let defaultCleanupAge: TimeInterval = 24 * 3600

  /// The marker a `create --cloud` holds locked (flock) in the local directory while it uploads
  /// `id`: an unlocked one means that upload's process is gone.
  static func uploadMarker(_ id: String) -> String { ".\(id).uploading" }

  /// Removes what dead creates left: unfinished local backups and temp files whose writer is
  /// gone, and with a cloud store, unfinished multipart uploads and manifest-less backup files
  /// of ours. Something is never touched while its writer holds its lock here; an upload or
  /// file another machine may still be writing is taken as dead only when older than
  /// `olderThan` (by its start time, else the time in its backup id). Only names of the
  /// `backup-<time>-<hex>` shape are ours. `dryRun` reports without removing.
  public func cleanUp(olderThan: TimeInterval = defaultCleanupAge, dryRun: Bool, now: Date = Date()) throws
    -> CleanupReport
  {
    var report = CleanupReport(dryRun: dryRun)
    func remove(_ item: CleanupItem, _ action: () throws -> Void) throws {
      if !dryRun { try action() }
      report.removed.append(item)
    }
    for e in try catalog.unfinishedEntries() {
      guard let file = e.fileName else { continue }
      let item = CleanupItem(
        kind: .unfinishedBackup, location: try store.path(of: file),
        reason: e.status == .incomplete ? "no manifest and its writer is gone" : "being written (locked)",
        startedAt: BackupID.date(of: e.id))
      if e.status == .inProgress {
        report.kept.append(item)
      } else {
        try remove(item) { try store.remove(file) }
      }
    }
    // temp files of interrupted manifest writes: `.<name>.tmp-<pid>`, the pid gone
    for name in try store.list() where name.hasPrefix(".backup-") && name.contains(".tmp-") {
      if let pid = Int32(name.split(separator: "-").last ?? ""), kill(pid, 0) == 0 || errno == EPERM {
        continue
      }
      try remove(.init(kind: .tempFile, location: try store.path(of: name), reason: "its writer is gone")) {
        try store.remove(name)
      }
    }
    if let cloud { try cleanUpCloud(cloud, olderThan: olderThan, now: now, into: &report) }
    return report
  }

  private func cleanUpCloud(
    _ cloud: BlobStore, olderThan: TimeInterval, now: Date, into report: inout CleanupReport
  ) throws {
    let dryRun = report.dryRun
    let markers = Set(try store.list().filter { $0.hasSuffix(".uploading") })
    /// Whether this machine's writer of `id` still runs (true), died (false), or is unknown (nil).
    func runningHere(_ id: String) -> Bool? {
      let marker = Self.uploadMarker(id)
      guard markers.contains(marker) else { return nil }
      return store.isLocked(marker)
    }
    func decide(_ id: String, started: Date?) -> (remove: Bool, reason: String) {
      switch runningHere(id) {
      case .some(true): return (false, "still being written here (locked)")
      case .some(false): return (true, "its create on this machine died")
      case .none:
        guard let started = started ?? BackupID.date(of: id) else { return (false, "start time unknown") }
        let age = now.timeIntervalSince(started)
        return age > olderThan
          ? (true, "started \(Self.duration(age)) ago")
          : (false, "started \(Self.duration(age)) ago: may still be running elsewhere (see --older-than)")
      }
    }
    let base = cloud.location
    if let janitor = innermostStore(cloud) as? UnfinishedUploads {
      for u in try janitor.unfinishedUploads() {
        let id = String(u.name.prefix { $0 != "." })
        guard BackupID.isValid(id) else { continue }  // not ours
        let (gone, reason) = decide(id, started: u.started)
        let item = CleanupItem(
          kind: .multipartUpload, location: "\(base)/\(u.name)", reason: reason, startedAt: u.started)
        if gone {
          if !dryRun {
            try janitor.abortUpload(u)
            logger.info("aborted the unfinished upload of \(base)/\(u.name)")
          }
          report.removed.append(item)
        } else {
          report.kept.append(item)
        }
      }
    }
    // backup files that went up without their manifest (the create died in between)
    let objects = try cloud.list(prefix: "backup-")
    let complete = Set(
      objects.filter { $0.name.hasSuffix(".manifest.json") }.map { String($0.name.prefix { $0 != "." }) })
    for o in objects {
      let id = String(o.name.prefix { $0 != "." })
      guard BackupID.isValid(id), !complete.contains(id) else { continue }
      let (gone, reason) = decide(id, started: nil)
      let item = CleanupItem(
        kind: .orphanedObject, location: "\(base)/\(o.name)", reason: "no manifest; " + reason,
        startedAt: BackupID.date(of: id))
      if gone {
        if !dryRun { try cloud.delete(o.name) }
        report.removed.append(item)
      } else {
        report.kept.append(item)
      }
    }
    // markers of dead creates: what they stood for is gone now
    for marker in markers where !store.isLocked(marker) {
      let item = CleanupItem(
        kind: .uploadMarker, location: try store.path(of: marker), reason: "its create died; handled above")
      if !dryRun { try store.remove(marker) }
      report.removed.append(item)
    }
  }

  static func duration(_ seconds: TimeInterval) -> String {
    let s = Int(seconds)
    if s >= 2 * 86400 { return "\(s / 86400) days" }
    if s >= 2 * 3600 { return "\(s / 3600) hours" }
    if s >= 120 { return "\(s / 60) minutes" }
    return "\(s) seconds"
  }
}
