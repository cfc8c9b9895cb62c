import Foundation

/// What listing a backup needs of its manifest: everything but the parts' members, the schema
/// objects and the SHA-256 checkpoints, which a restore or a verify reads. A manifest of a
/// database of thousands of tables holds tens of thousands of those JSON objects, and decoding
/// each costs microseconds, so `list` decodes this instead (and `Manifest.decode` stays what a
/// restore, a verify and a status read).
public struct ManifestSummary: Decodable, Sendable {
  public struct Part: Decodable, Sendable {
    public var kind: PartKind
    public var table: String?
    public var storedOffset: Int64
    public var storedLength: Int64
    public var rawSize: Int64
    public var rows: Int64?
    public var contentChecksum: String?
  }

  public var formatVersion: Int
  public var id: String
  public var name: String?
  public var createdAt: Date
  public var durationSeconds: Double
  public var database: Manifest.DatabaseInfo
  public var format: DumpFormat
  public var compression: Manifest.CompressionInfo
  public var file: Manifest.FileInfo
  public var rawSizeBytes: Int64
  public var parts: [Part]
  public var encryption: Manifest.EncryptionInfo?

  public var tableParts: [Part] { parts.filter { $0.kind == .table } }

  public static func decode(_ data: Data) throws -> ManifestSummary {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = UTCStamp.jsonDecoding
    return try decoder.decode(ManifestSummary.self, from: data)
  }

  /// The summary of a manifest read whole.
  public init(_ m: Manifest) {
    formatVersion = m.formatVersion
    id = m.id
    name = m.name
    createdAt = m.createdAt
    durationSeconds = m.durationSeconds
    database = m.database
    format = m.format
    compression = m.compression
    file = m.file
    rawSizeBytes = m.rawSizeBytes
    parts = m.parts.map {
      Part(
        kind: $0.kind, table: $0.table, storedOffset: $0.storedOffset, storedLength: $0.storedLength,
        rawSize: $0.rawSize, rows: $0.rows, contentChecksum: $0.contentChecksum)
    }
    encryption = m.encryption
  }

  /// The checks of `Manifest.validate` that need only these fields: the format version, the
  /// id, the file name, and parts that cover the payload end to end.
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
      if p.kind == .table && p.table == nil { throw bad("table part \(i) has no table name") }
      expected = p.storedOffset + p.storedLength
    }
    let payload = encryption?.payloadSizeBytes ?? file.sizeBytes
    guard expected == payload else { throw bad("parts cover \(expected) of \(payload) bytes") }
    guard file.sha256.count == 64 else { throw bad("file sha256") }
  }
}
