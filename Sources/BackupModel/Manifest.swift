import Foundation

/// `<id>.manifest.json`: the description of one complete backup (docs/FORMAT.md). Written
/// last and atomically; a backup file without one is unfinished.
public struct Manifest: Codable, Sendable, Equatable {
  /// Bumped on any change a reader of an older version could misread. Version 2 adds
  /// `encryption`; version 3 replaces the parts' `sha256` (of the decoded bytes) with
  /// `storedSha256` (of the stored bytes); version 4 replaces the parts' digests with the
  /// payload's SHA-256 checkpoints (`sha256Checkpoints`). A manifest says the lowest version that
  /// describes it (`minimumFormatVersion`).
  public static let currentFormatVersion = 4

  /// 4 with `sha256Checkpoints`, else 3 when a part carries `storedSha256`, else 2 when the
  /// backup is encrypted, else 1.
  public var minimumFormatVersion: Int {
    if sha256Checkpoints != nil { return 4 }
    return parts.contains { $0.storedSha256 != nil } ? 3 : (encryption == nil ? 1 : 2)
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
  /// The SHA-256 state of the payload at 64-byte-aligned offsets (docs/FORMAT.md, "Part
  /// checksums"): with them one SHA-256 pass gives the payload's digest and any byte range can
  /// be checked alone (a part: from the checkpoint at or before it to the one at or after it).
  public var sha256Checkpoints: [Checkpoint]?

  public struct Checkpoint: Codable, Sendable, Equatable {
    /// A multiple of 64, inside the payload (0 < offset < its size).
    public var offset: Int64
    /// `SHA256Digest.midstateHex()` after the payload's first `offset` bytes.
    public var state: String
    public init(offset: Int64, state: String) {
      self.offset = offset
      self.state = state
    }
  }

  public init(
    id: String, name: String?, createdAt: Date, durationSeconds: Double, database: DatabaseInfo,
    format: DumpFormat, compression: CompressionInfo, file: FileInfo, rawSizeBytes: Int64,
    parts: [Part], objects: [SchemaObject], encryption: EncryptionInfo? = nil,
    sha256Checkpoints: [Checkpoint]? = nil, tool: String = ToolInfo.versionString
  ) {
    self.formatVersion = 1
    self.encryption = encryption
    self.sha256Checkpoints = sha256Checkpoints
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
    /// PostgreSQL: the source database's encoding and locale, which a restore that creates its
    /// target gives it (absent for other engines and in older backups).
    public var creation: DatabaseCreation?
    public init(
      engine: EngineKind, location: String, serverVersion: String, sizeBytes: Int64?,
      replicationPosition: ReplicationPosition? = nil, creation: DatabaseCreation? = nil
    ) {
      self.engine = engine
      self.location = location
      self.serverVersion = serverVersion
      self.sizeBytes = sizeBytes
      self.replicationPosition = replicationPosition
      self.creation = creation
    }
  }

  /// How a PostgreSQL database was created (pg_database), as `CREATE DATABASE` takes it.
  public struct DatabaseCreation: Codable, Sendable, Equatable {
    public var encoding: String
    public var lcCollate: String
    public var lcCtype: String
    /// `libc`, `icu` or `builtin` (PostgreSQL 15 and newer; absent before, meaning libc).
    public var localeProvider: String?
    /// The ICU or builtin provider's locale (absent for libc).
    public var providerLocale: String?
    public init(
      encoding: String, lcCollate: String, lcCtype: String, localeProvider: String? = nil,
      providerLocale: String? = nil
    ) {
      self.encoding = encoding
      self.lcCollate = lcCollate
      self.lcCtype = lcCtype
      self.localeProvider = localeProvider
      self.providerLocale = providerLocale
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
    /// SHA-256 of the decrypted payload (format version 4; the end of its checkpoint chain).
    public var payloadSha256: String?
    public init(
      scheme: String = "age", recipients: [String], payloadSizeBytes: Int64, scryptWorkFactor: Int? = nil,
      payloadSha256: String? = nil
    ) {
      self.scheme = scheme
      self.recipients = recipients
      self.payloadSizeBytes = payloadSizeBytes
      self.scryptWorkFactor = scryptWorkFactor
      self.payloadSha256 = payloadSha256
    }
  }

  /// The size of the byte stream the parts lie in: the file, or its decrypted payload.
  public var payloadSizeBytes: Int64 { encryption?.payloadSizeBytes ?? file.sizeBytes }

  /// The SHA-256 of the byte stream the parts lie in (the file's, when it is not encrypted).
  public var payloadSha256: String? { encryption.map { $0.payloadSha256 } ?? file.sha256 }

  /// How to check any byte range of the payload (format version 4), else nil.
  public var payloadChain: PayloadChain? {
    guard let sha256Checkpoints, let payloadSha256 else { return nil }
    return PayloadChain(checkpoints: sha256Checkpoints, size: payloadSizeBytes, sha256: payloadSha256)
  }

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
    // the format version, the id, the file name, parts that cover the payload end to end
    try ManifestSummary(self).validate()
    for (i, p) in parts.enumerated() {
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
      guard sha256Checkpoints != nil || p.storedSha256 != nil || p.sha256 != nil,
        [p.storedSha256, p.sha256].allSatisfy({ $0 == nil || SHA256Digest.isHex($0!) })
      else { throw bad("sha256 of part \(i)") }
    }
    if let e = encryption {
      guard e.scheme == "age", !e.recipients.isEmpty else { throw bad("encryption \(e.scheme)") }
      guard formatVersion >= 2 else { throw bad("encryption needs format version 2") }
    }
    guard formatVersion >= minimumFormatVersion else {
      throw bad("format version \(formatVersion) cannot describe it (\(minimumFormatVersion) needed)")
    }
    if let checkpoints = sha256Checkpoints {
      guard let digest = payloadSha256, SHA256Digest.isHex(digest) else { throw bad("payload sha256") }
      var last: Int64 = 0
      for c in checkpoints {
        guard c.offset > last, c.offset % 64 == 0, c.offset < payloadSizeBytes, SHA256Digest.isHex(c.state)
        else {
          throw bad("sha256 checkpoint at \(c.offset)")
        }
        last = c.offset
      }
    }
  }

  public static func decode(_ data: Data) throws -> Manifest {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = UTCStamp.jsonDecoding
    return try decoder.decode(Manifest.self, from: data)
  }

  public func encoded() throws -> Data {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = UTCStamp.jsonEncoding
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return try encoder.encode(self)
  }
}

/// The payload's SHA-256 checkpoints (format version 4) and where a check of a byte range starts
/// and ends: it hashes from the last checkpoint at or before the range (else from the payload's
/// start) to the first one at or after it (else to the payload's end, where the digest is the
/// payload's SHA-256), comparing the state at every checkpoint it passes.
public struct PayloadChain: Sendable, Equatable {
  public var checkpoints: [Manifest.Checkpoint]
  public var size: Int64
  public var sha256: String

  public init(checkpoints: [Manifest.Checkpoint], size: Int64, sha256: String) {
    self.checkpoints = checkpoints
    self.size = size
    self.sha256 = sha256
  }

  /// The index of the first checkpoint whose offset is >= `offset`.
  private func firstIndex(atOrAfter offset: Int64) -> Int {
    var (lo, hi) = (0, checkpoints.count)
    while lo < hi {
      let mid = (lo + hi) / 2
      if checkpoints[mid].offset < offset { lo = mid + 1 } else { hi = mid }
    }
    return lo
  }

  /// Where a check of a range starting at `offset` begins: the checkpoint (offset and state), or
  /// (0, nil) for SHA-256's initial state.
  public func start(before offset: Int64) -> (offset: Int64, state: String?) {
    let i = firstIndex(atOrAfter: offset + 1) - 1
    return i >= 0 ? (checkpoints[i].offset, checkpoints[i].state) : (0, nil)
  }

  /// Where a check of a range ending at `offset` ends: a checkpoint, or (size, nil) for the end of
  /// the payload (checked against `sha256`).
  public func end(after offset: Int64) -> (offset: Int64, state: String?) {
    let i = firstIndex(atOrAfter: offset)
    return i < checkpoints.count ? (checkpoints[i].offset, checkpoints[i].state) : (size, nil)
  }

  /// The checkpoints strictly between two offsets, in order.
  public func between(_ a: Int64, _ b: Int64) -> ArraySlice<Manifest.Checkpoint> {
    let from = firstIndex(atOrAfter: a + 1)
    return checkpoints[from..<max(from, firstIndex(atOrAfter: b))]
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

/// ISO 8601 basic UTC timestamps (`20260101T120000Z`: backup ids, SigV4's X-Amz-Date) through
/// the C library: Foundation's Calendar, TimeZone and DateFormatter load ICU and its data
/// (~4 MiB of resident memory in every process).
public enum UTCStamp {
  public static func basic(_ date: Date) -> String { format(date, dateSeparator: "", timeSeparator: "") }

  private static func format(_ date: Date, dateSeparator d: String, timeSeparator t: String) -> String {
    var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
    var parts = tm()
    gmtime_r(&seconds, &parts)
    func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
    return "\(parts.tm_year + 1900)\(d)\(two(parts.tm_mon + 1))\(d)\(two(parts.tm_mday))T"
      + "\(two(parts.tm_hour))\(t)\(two(parts.tm_min))\(t)\(two(parts.tm_sec))Z"
  }

  /// Seconds since the epoch of a UTC date and time, nil when a field is out of range (timegm
  /// would normalise month 13 or second 61 instead of refusing them).
  private static func utc(
    _ fields: (year: Int32, month: Int32, day: Int32, hour: Int32, minute: Int32, second: Int32)
  )
    -> TimeInterval?
  {
    var parts = tm()
    parts.tm_year = fields.year - 1900
    parts.tm_mon = fields.month - 1
    parts.tm_mday = fields.day
    parts.tm_hour = fields.hour
    parts.tm_min = fields.minute
    parts.tm_sec = fields.second
    let expected = (parts.tm_mon, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec)
    let t = timegm(&parts)
    guard expected == (parts.tm_mon, parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec) else {
      return nil
    }
    return TimeInterval(t)
  }

  /// The date `basic` wrote, or nil for anything else.
  public static func parseBasic(_ s: String) -> Date? {
    let b = Array(s.utf8)
    guard b.count == 16, b[8] == UInt8(ascii: "T"), b[15] == UInt8(ascii: "Z"),
      b.indices.allSatisfy({ $0 == 8 || $0 == 15 || (0x30...0x39).contains(b[$0]) })
    else { return nil }
    func number(_ from: Int, _ count: Int) -> Int32 {
      b[from..<from + count].reduce(0) { $0 * 10 + Int32($1 - 0x30) }
    }
    return utc((number(0, 4), number(4, 2), number(6, 2), number(9, 2), number(11, 2), number(13, 2)))
      .map { Date(timeIntervalSince1970: $0) }
  }

  /// ISO 8601 extended UTC to the second (`2026-11-28T21:37:01Z`): the manifest's and the JSON
  /// output's dates, as JSONEncoder's `.iso8601` writes them (which, decoding, builds a Calendar
  /// and so loads ICU's time zone data: ~3 MiB more resident in every command that reads a
  /// manifest).
  public static func extended(_ date: Date) -> String {
    format(date, dateSeparator: "-", timeSeparator: ":")
  }

  /// An ISO 8601 extended date-time with a zone: `Z` or `±hh:mm` (or `±hhmm`), optionally with a
  /// fraction of a second (`2026-11-28T21:37:01.123Z`, as S3 writes them); nil for anything else.
  public static func parseExtended(_ s: String) -> Date? {
    let b = Array(s.utf8)
    func digits(_ from: Int, _ count: Int) -> Int32? {
      guard from + count <= b.count else { return nil }
      var v: Int32 = 0
      for c in b[from..<from + count] {
        guard (0x30...0x39).contains(c) else { return nil }
        v = v * 10 + Int32(c - 0x30)
      }
      return v
    }
    func at(_ i: Int, _ c: Character) -> Bool { i < b.count && b[i] == c.asciiValue! }
    guard let year = digits(0, 4), at(4, "-"), let month = digits(5, 2), at(7, "-"), let day = digits(8, 2),
      at(10, "T") || at(10, "t"), let hour = digits(11, 2), at(13, ":"), let minute = digits(14, 2),
      at(16, ":"), let second = digits(17, 2)
    else { return nil }
    var i = 19
    var fraction = 0.0
    if at(i, ".") {
      i += 1
      var scale = 0.1
      let start = i
      while let d = digits(i, 1) {
        fraction += Double(d) * scale
        scale /= 10
        i += 1
      }
      guard i > start else { return nil }
    }
    var offset: Int32 = 0
    if at(i, "Z") || at(i, "z") {
      i += 1
    } else if at(i, "+") || at(i, "-") {
      let sign: Int32 = at(i, "-") ? -1 : 1
      guard let h = digits(i + 1, 2), h < 24 else { return nil }
      i += 3
      if at(i, ":") { i += 1 }
      guard let m = digits(i, 2), m < 60 else { return nil }
      i += 2
      offset = sign * (h * 3600 + m * 60)
    } else {
      return nil
    }
    guard i == b.count, let t = utc((year, month, day, hour, minute, second)) else { return nil }
    return Date(timeIntervalSince1970: t - TimeInterval(offset) + fraction)
  }

  /// JSON dates as `extended` writes them.
  public static let jsonEncoding = JSONEncoder.DateEncodingStrategy.custom { date, encoder in
    var c = encoder.singleValueContainer()
    try c.encode(extended(date))
  }

  /// JSON dates as `parseExtended` reads them.
  public static let jsonDecoding = JSONDecoder.DateDecodingStrategy.custom { decoder in
    let c = try decoder.singleValueContainer()
    let text = try c.decode(String.self)
    guard let date = parseExtended(text) else {
      throw DecodingError.dataCorruptedError(
        in: c, debugDescription: "\"\(text)\" is not an ISO 8601 date-time")
    }
    return date
  }
}

public enum ToolInfo {
  public static let version = "0.1.0"
  public static var versionString: String { "ai-shell \(version)" }
}

/// Backup ids: `backup-YYYYMMDDTHHMMSSZ-xxxx` (UTC time, 4 random hex digits). They sort by time.
public enum BackupID {
  public static func make(at date: Date = Date()) -> String {
    let suffix = String(UInt16.random(in: 0...UInt16.max), radix: 16)
    return "backup-\(UTCStamp.basic(date))-\(String(repeating: "0", count: 4 - suffix.count))\(suffix)"
  }

  /// The creation time an id records (nil for an id not made by `make`).
  public static func date(of id: String) -> Date? {
    let parts = id.split(separator: "-")
    guard parts.count >= 2, parts[0] == "backup" else { return nil }
    return UTCStamp.parseBasic(String(parts[1]))
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
