import BackupModel
import Foundation

/// The fields `create --json`, `list --output json` and `status --json` share.
public struct BackupSummary: Codable, Sendable {
  public struct Table: Codable, Sendable {
    public var name: String
    public var rows: Int64
    public var rawSizeBytes: Int64
    public var storedSizeBytes: Int64
    public var checksum: String?
  }
  public var id: String
  public var status: CatalogEntry.Status
  public var name: String?
  public var database: String?
  public var engine: EngineKind?
  public var format: DumpFormat?
  public var compression: CompressionAlgorithm?
  public var compressionLevel: Int?
  /// Absolute path of the backup file.
  public var file: String?
  public var sizeBytes: Int64?
  public var rawSizeBytes: Int64?
  public var sha256: String?
  public var tables: [Table]
  public var createdAt: Date?
  public var durationSeconds: Double?
  public var encrypted: Bool?
  /// For encrypted backups: the age recipients (public keys, or "scrypt").
  public var recipients: [String]?
  /// With --cloud: where the backup is ("local", "cloud" or "local+cloud").
  public var location: String?
  /// The cloud copy of the file (`s3://bucket/prefix/name`), when there is one.
  public var cloudFile: String?

  init(entry: CatalogEntry, directory: String) {
    self.init(
      CatalogSummary(
        id: entry.id, status: entry.status, manifest: entry.manifest.map(ManifestSummary.init),
        fileName: entry.fileName), directory: directory)
  }

  init(_ entry: CatalogSummary, directory: String) {
    id = entry.id
    status = entry.status
    tables = []
    if let file = entry.fileName { self.file = (directory as NSString).appendingPathComponent(file) }
    guard let m = entry.manifest else { return }
    name = m.name
    database = m.database.location
    engine = m.database.engine
    format = m.format
    compression = m.compression.algorithm
    compressionLevel = m.compression.level
    file = (directory as NSString).appendingPathComponent(m.file.name)
    sizeBytes = m.file.sizeBytes
    rawSizeBytes = m.rawSizeBytes
    sha256 = m.file.sha256
    tables = m.tableParts.map {
      Table(
        name: $0.table ?? "", rows: $0.rows ?? 0, rawSizeBytes: $0.rawSize, storedSizeBytes: $0.storedLength,
        checksum: $0.contentChecksum)
    }
    createdAt = m.createdAt
    durationSeconds = m.durationSeconds
    encrypted = m.encryption != nil
    recipients = m.encryption?.recipients
  }

  /// Raw size divided by stored size (how many times smaller the file is).
  public var compressionRatio: Double? {
    guard let raw = rawSizeBytes, let stored = sizeBytes, stored > 0 else { return nil }
    return Double(raw) / Double(stored)
  }
}

/// Progress of a long operation, rendered by the CLI (a bar on a TTY, plain lines otherwise).
public protocol ProgressObserver: AnyObject {
  func begin(_ label: String, totalBytes: Int64?)
  func advance(to bytes: Int64)
  /// Bytes the cloud store has acknowledged so far (a streamed upload's completed parts).
  func confirmed(_ bytes: Int64)
  func end()
}

extension ProgressObserver {
  public func confirmed(_ bytes: Int64) {}
}

/// The result of `verify` and of `status --verify`.
public struct VerifyReport: Codable, Sendable {
  public struct Check: Codable, Sendable {
    public var name: String
    public var ok: Bool
    public var detail: String
  }
  public var id: String
  public var checks: [Check]
  public var ok: Bool { checks.allSatisfy(\.ok) }

  enum CodingKeys: String, CodingKey { case id, checks, ok }
  public func encode(to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(id, forKey: .id)
    try c.encode(checks, forKey: .checks)
    try c.encode(ok, forKey: .ok)
  }
  public init(id: String, checks: [Check]) {
    self.id = id
    self.checks = checks
  }
  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    id = try c.decode(String.self, forKey: .id)
    checks = try c.decode([Check].self, forKey: .checks)
  }
}

/// Byte counts for people: `12.3 MiB` (binary units), `512 B`, or `-` when unknown.
public enum ByteText {
  public static func format(_ n: Int64?) -> String {
    guard let n else { return "-" }
    let units = ["B", "KiB", "MiB", "GiB", "TiB"]
    var v = Double(n)
    var i = 0
    while v >= 1024 && i < units.count - 1 {
      v /= 1024
      i += 1
    }
    return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
  }
}
