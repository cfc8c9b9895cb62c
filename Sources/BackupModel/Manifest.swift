import Foundation

/// `<id>.manifest.json`: the description of one complete backup (docs/FORMAT.md). Written
/// last and atomically; a backup file without one is unfinished.
public struct Manifest: Codable, Sendable, Equatable {
  /// Bumped on any change a reader of an older version could misread. Version 2 adds
  /// `encryption`; version 3 replaces the parts' `sha256` (of the decoded bytes) with
  /// `storedSha256` (of the stored bytes). A manifest says the lowest version that describes it
  /// (`minimumFormatVersion`).
  public static let currentFormatVersion = 3

  /// 3 when a part carries `storedSha256`, else 2 when the backup is encrypted, else 1.
  public var minimumFormatVersion: Int {
    parts.contains { $0.storedSha256 != nil } ? 3 : (encryption == nil ? 1 : 2)
  }

  public var formatVersion: Int
  public var tool: String
  public var id: String
  public var name: String?
  public var createdAt: Date
  public var durationSeconds: Double
  public var database: DatabaseInfo
  public var format: DumpFormat
  public var compression: CompressionInfo
  public var file: FileInfo
  /// Total uncompressed size of all parts.
  public var rawSizeBytes: Int64
  public var parts: [Part]
  /// Every schema object in the backup, in creation order (for planning a restore before
  /// reading any data: conflicts, `--drop-existing`, `--tables`).
  public var objects: [SchemaObject]
  /// Set when the stored file is an age file; part offsets then refer to its decrypted payload.
  public var encryption: EncryptionInfo?

  public init(
    id: String, name: String?, createdAt: Date, durationSeconds: Double, database: DatabaseInfo,
    format: DumpFormat, compression: CompressionInfo, file: FileInfo, rawSizeBytes: Int64,
    parts: [Part], objects: [SchemaObject], encryption: EncryptionInfo? = nil,
    tool: String = ToolInfo.versionString
  ) {
    self.formatVersion = 1
    self.encryption = encryption
    self.tool = tool
    self.id = id
    self.name = name
    self.createdAt = createdAt
    self.durationSeconds = durationSeconds
    self.database = database
    self.format = format
    self.compression = compression
    self.file = file
    self.rawSizeBytes = rawSizeBytes
    self.parts = parts
    self.objects = objects
    self.formatVersion = minimumFormatVersion
  }

  public struct DatabaseInfo: Codable, Sendable, Equatable {
    public var engine: EngineKind
    /// What the user named (`--database`): an absolute path for SQLite.
    public var location: String
    public var serverVersion: String
    public var sizeBytes: Int64?
    /// MySQL/MariaDB: the binary log position of the backup's snapshot (absent for other engines
    /// and when binary logging is off).
    public var replicationPosition: ReplicationPosition?
    public init(
      engine: EngineKind, location: String, serverVersion: String, sizeBytes: Int64?,
      replicationPosition: ReplicationPosition? = nil
    ) {
      self.engine = engine
      self.location = location
      self.serverVersion = serverVersion
      self.sizeBytes = sizeBytes
      self.replicationPosition = replicationPosition
    }
  }

  /// Where a server's binary log stood at the backup's snapshot: point-in-time recovery replays
  /// from here.
  public struct ReplicationPosition: Codable, Sendable, Equatable {
    public var binlogFile: String
    public var binlogPosition: Int64
    /// The GTID position (MariaDB `gtid_binlog_pos`, MySQL `gtid_executed`), when there is one.
    public var gtid: String?
    public init(binlogFile: String, binlogPosition: Int64, gtid: String?) {
      self.binlogFile = binlogFile
      self.binlogPosition = binlogPosition
      self.gtid = gtid
    }
  }

  public struct CompressionInfo: Codable, Sendable, Equatable {
    public var algorithm: CompressionAlgorithm
    public var level: Int
    /// The largest raw size of one member; a member never spans two parts.
    public var memberSizeBytes: Int
    public init(algorithm: CompressionAlgorithm, level: Int, memberSizeBytes: Int) {
      self.algorithm = algorithm
      self.level = level
      self.memberSizeBytes = memberSizeBytes
    }
  }

  public struct EncryptionInfo: Codable, Sendable, Equatable {
    /// "age" (age-encryption.org/v1).
    public var scheme: String
    /// Who can read the backup: X25519 recipients ("age1..."), or "scrypt" for a passphrase.
    public var recipients: [String]
    /// Size of the decrypted payload (the compressed stream the parts lie in).
    public var payloadSizeBytes: Int64
    /// For a passphrase: scrypt's log2(N) (readers refuse factors above 22).
    public var scryptWorkFactor: Int?
    public init(
      scheme: String = "age", recipients: [String], payloadSizeBytes: Int64, scryptWorkFactor: Int? = nil
    ) {
      self.scheme = scheme
      self.recipients = recipients
      self.payloadSizeBytes = payloadSizeBytes
      self.scryptWorkFactor = scryptWorkFactor
    }
  }

  /// The size of the byte stream the parts lie in: the file, or its decrypted payload.
  public var payloadSizeBytes: Int64 { encryption?.payloadSizeBytes ?? file.sizeBytes }

  public struct FileInfo: Codable, Sendable, Equatable {
    /// The file name inside the backup directory (never a path).
    public var name: String
    public var sizeBytes: Int64
    public var sha256: String
    public init(name: String, sizeBytes: Int64, sha256: String) {
      self.name = name
      self.sizeBytes = sizeBytes
      self.sha256 = sha256
    }
  }

  public struct Member: Codable, Sendable, Equatable {
    /// Offset of the member's first raw byte within its part.
    public var rawOffset: Int64
    public var rawLength: Int64
    /// Offset of the member's first stored byte within the file.
    public var storedOffset: Int64
    public var storedLength: Int64
    public init(rawOffset: Int64, rawLength: Int64, storedOffset: Int64, storedLength: Int64) {
      self.rawOffset = rawOffset
      self.rawLength = rawLength
      self.storedOffset = storedOffset
      self.storedLength = storedLength
    }
  }

  public struct Part: Codable, Sendable, Equatable {
    public var kind: PartKind
    /// The table, for `.table` parts.
    public var table: String?
    /// Byte range of the part in the stored file: [storedOffset, storedOffset + storedLength).
    public var storedOffset: Int64
    public var storedLength: Int64
    public var rawSize: Int64
    /// SHA-256 of the part's stored bytes: its byte range of the file (of the decrypted payload
    /// when the backup is encrypted), as compressed. Written by this version.
    public var storedSha256: String?
    /// SHA-256 of the part's decoded bytes: written by earlier versions instead of
    /// `storedSha256`, and still checked when a manifest has it.
    public var sha256: String?
    /// Rows, for `.table` parts.
    public var rows: Int64?
    /// The engine-independent content checksum of the table's rows (see `ContentChecksum`).
    public var contentChecksum: String?
    public var members: [Member]
    public init(
      kind: PartKind, table: String?, storedOffset: Int64, storedLength: Int64, rawSize: Int64,
      storedSha256: String?, sha256: String? = nil, rows: Int64?, contentChecksum: String?,
      members: [Member]
    ) {
      self.kind = kind
      self.table = table
      self.storedOffset = storedOffset
      self.storedLength = storedLength
      self.rawSize = rawSize
      self.storedSha256 = storedSha256
      self.sha256 = sha256
      self.rows = rows
      self.contentChecksum = contentChecksum
      self.members = members
    }
  }

  /// The table parts, in file order.
  public var tableParts: [Part] { parts.filter { $0.kind == .table } }

  /// Checks the invariants a reader relies on; throws `.corrupt` naming the first broken one.
  public func validate() throws {
    func bad(_ what: String) -> BackupError {
      BackupError(.corrupt, "manifest of \(id) is invalid: \(what)", hint: "the backup cannot be trusted")
    }
    guard formatVersion >= 1 else { throw bad("formatVersion \(formatVersion)") }
    guard formatVersion <= Manifest.currentFormatVersion else {
      throw BackupError(
        .corrupt, "manifest of \(id) has format version \(formatVersion), newer than this tool reads",
        hint: "upgrade ai-shell")
    }
    guard BackupID.isValid(id) else { throw bad("id \"\(id)\"") }
    guard !file.name.contains("/"), !file.name.hasPrefix("."), !file.name.isEmpty else {
      throw bad("file name \"\(file.name)\"")
    }
    var expected: Int64 = 0
    for (i, p) in parts.enumerated() {
      guard p.storedOffset == expected, p.storedLength >= 0, p.rawSize >= 0 else {
        throw bad("part \(i) byte range")
      }
      var raw: Int64 = 0
      var stored = p.storedOffset
      for m in p.members {
        guard m.rawOffset == raw, m.storedOffset == stored, m.rawLength >= 0, m.storedLength > 0 else {
          throw bad("member layout of part \(i)")
        }
        raw += m.rawLength
        stored += m.storedLength
      }
      guard raw == p.rawSize, stored == p.storedOffset + p.storedLength else {
        throw bad("member sizes of part \(i)")
      }
      guard p.storedSha256 != nil || p.sha256 != nil,
        [p.storedSha256, p.sha256].allSatisfy({ $0 == nil || SHA256Digest.isHex($0!) })
      else { throw bad("sha256 of part \(i)") }
      if p.kind == .table && p.table == nil { throw bad("table part \(i) has no table name") }
      expected = p.storedOffset + p.storedLength
    }
    guard expected == payloadSizeBytes else {
      throw bad("parts cover \(expected) of \(payloadSizeBytes) bytes")
    }
    if let e = encryption {
      guard e.scheme == "age", !e.recipients.isEmpty else { throw bad("encryption \(e.scheme)") }
      guard formatVersion >= 2 else { throw bad("encryption needs format version 2") }
    }
    guard formatVersion >= minimumFormatVersion else {
      throw bad("format version \(formatVersion) cannot describe it (\(minimumFormatVersion) needed)")
    }
    guard file.sha256.count == 64 else { throw bad("file sha256") }
  }

  public static func decode(_ data: Data) throws -> Manifest {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    return try decoder.decode(Manifest.self, from: data)
  }

  public func encoded() throws -> Data {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return try encoder.encode(self)
  }
}

/// One object of the source schema.
public struct SchemaObject: Codable, Sendable, Equatable {
  /// table, index, view or trigger.
  public var type: String
  public var name: String
  /// The table the object belongs to (itself for tables; nil for views).
  public var table: String?
  public init(type: String, name: String, table: String?) {
    self.type = type
    self.name = name
    self.table = table
  }
}

public enum ToolInfo {
  public static let version = "0.1.0"
  public static var versionString: String { "ai-shell \(version)" }
}

/// Backup ids: `backup-YYYYMMDDTHHMMSSZ-xxxx` (UTC time, 4 random hex digits). They sort by time.
public enum BackupID {
  public static func make(at date: Date = Date()) -> String {
    var cal = Calendar(identifier: .gregorian)
    cal.timeZone = TimeZone(identifier: "UTC")!
    let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
    let stamp = String(
      format: "%04d%02d%02dT%02d%02d%02dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    let suffix = String(format: "%04x", UInt16.random(in: 0...UInt16.max))
    return "backup-\(stamp)-\(suffix)"
  }

  /// The creation time an id records (nil for an id not made by `make`).
  public static func date(of id: String) -> Date? {
    let parts = id.split(separator: "-")
    guard parts.count >= 2, parts[0] == "backup" else { return nil }
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
    return f.date(from: String(parts[1]))
  }

  /// True for strings of the shape `make` produces (only safe file-name characters).
  public static func isValid(_ id: String) -> Bool {
    let bytes = Array(id.utf8)
    guard bytes.count >= 8, bytes.count <= 128, id.hasPrefix("backup-") else { return false }
    return bytes.allSatisfy { b in
      (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x2D
    }
  }
}
