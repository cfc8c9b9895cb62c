import BackupEngines
import BackupModel
import BackupPipeline
import BackupStorage
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

// MARK: export

extension BackupService {
  public struct ExportOptions: Sendable {
    public var destination: String
    public var includeMetadata: Bool
    /// Re-encode every member with this algorithm (nil: copy the file as it is).
    public var compression: CompressionAlgorithm?
    public var level: Int?
    public var force: Bool
    /// Encrypt the copy with age (nil: the copy is as the backup is).
    public var encryption: EncryptionRequest?
    public init(
      destination: String, includeMetadata: Bool = true, compression: CompressionAlgorithm? = nil,
      level: Int? = nil,
      force: Bool = false, encryption: EncryptionRequest? = nil
    ) {
      self.encryption = encryption
      self.destination = destination
      self.includeMetadata = includeMetadata
      self.compression = compression
      self.level = level
      self.force = force
    }
  }

  public struct ExportOutcome: Codable, Sendable {
    public var id: String
    /// Absolute path of the exported backup file.
    public var file: String
    /// Absolute path of the manifest written beside it (nil with --no-include-metadata).
    public var manifest: String?
    public var sizeBytes: Int64
    public var sha256: String
    public var compression: CompressionAlgorithm
    public var recompressed: Bool
  }

  /// Writes the backup as one standard file at `destination` (a folder, created if needed, or a
  /// file path), with a manifest describing the copy beside it. The source is checked while it is
  /// read (file SHA-256 when copied, every part's SHA-256 when re-encoded); nothing is left at
  /// the destination on failure. Existing files are refused unless `force`.
  public func export(_ idOrPrefix: String, options: ExportOptions) throws -> ExportOutcome {
    let m = try manifest(for: idOrPrefix)
    // fail closed before any work
    let recipients = try options.encryption?.ageRecipients()
    if recipients != nil && m.encryption != nil {
      throw BackupError(.usage, "backup \(m.id) is already encrypted", hint: "export it without --encrypt")
    }
    // the local file, else (with --cloud) the cloud copy, read by ranges as it is written out
    let source = source(for: m)
    guard let size = try source.stat(m.file.name) else {
      throw BackupError(.notFound, "backup file \(m.file.name) is missing from \(source.location)")
    }
    guard size == m.file.sizeBytes else {
      throw BackupError(
        .corrupt, "backup file \(m.file.name) has \(size) bytes, the manifest records \(m.file.sizeBytes)",
        hint: "nothing was exported")
    }
    let recompress =
      options.compression.map { $0 != m.compression.algorithm || options.level != nil } ?? false
    if recompress && m.encryption != nil {
      throw BackupError(
        .usage, "backup \(m.id) is encrypted; --compress cannot re-encode it",
        hint: "export it as it is (without --compress)")
    }
    let algorithm = options.compression ?? m.compression.algorithm
    let defaultName =
      (recompress
        ? m.id + m.format.fileExtension + algorithm.fileExtension
        : m.file.name) + (recipients != nil ? ".age" : "")
    let (directory, fileName) = try exportTarget(options.destination, defaultName: defaultName)
    let target = LocalStore(directory: directory)
    let filePath = try target.path(of: fileName)
    let manifestName = Catalog.manifestName(m.id)
    let manifestPath = try target.path(of: manifestName)
    let sourcePath = try store.path(of: m.file.name)
    let sourceManifestPath = try store.path(of: manifestName)
    if BackupDirectory.absolute(filePath) == BackupDirectory.absolute(sourcePath)
      || (options.includeMetadata
        && BackupDirectory.absolute(manifestPath) == BackupDirectory.absolute(sourceManifestPath))
    {
      throw BackupError(.refused, "the destination is the backup itself", hint: "export to another folder")
    }
    if !options.force {
      for p in [filePath] + (options.includeMetadata ? [manifestPath] : []) where access(p, F_OK) == 0 {
        throw BackupError(.refused, "\(p) already exists", hint: "use --force to overwrite it")
      }
    }
    try target.ensureDirectory()
    let tempName = ".\(fileName).tmp-\(getpid())"
    try? target.remove(tempName)
    let out = try target.create(tempName)
    var copy = m
    do {
      let input = try source.open(m.file.name)
      // out <- SHA-256 of the copy <- age (with --encrypt) <- the member stream
      let hashing = HashingOutput(out)
      let encrypting = try recipients.map { try AgeEncryptingOutput(output: hashing, recipients: $0) }
      let payload: ByteOutput = encrypting ?? hashing
      let payloadSize: Int64
      let payloadSha256: String
      if recompress {
        let writer = try BackupFileWriter(output: payload, algorithm: algorithm, level: options.level)
        var buffer = [UInt8](repeating: 0, count: 256 * 1024)
        for part in m.parts {
          let reader = try PartReader(
            input: input, part: part, chain: m.payloadChain, algorithm: m.compression.algorithm,
            label: partLabel(part))
          try writer.beginPart(kind: part.kind, table: part.table)
          while true {
            let n = try buffer.withUnsafeMutableBytes { try reader.read(into: $0) }
            if n == 0 { break }
            try buffer.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
          }
          try writer.endPart(rows: part.rows, contentChecksum: part.contentChecksum)
        }
        let layout = try writer.finish()
        for (old, new) in zip(m.parts, layout.parts)
        where old.rawSize != new.rawSize {
          throw BackupError(.corrupt, "\(partLabel(old)) changed while being re-encoded")
        }
        copy.compression = .init(
          algorithm: algorithm, level: writer.level, memberSizeBytes: writer.memberSize)
        copy.parts = layout.parts
        copy.rawSizeBytes = layout.rawSizeBytes
        copy.sha256Checkpoints = layout.checkpoints
        payloadSize = layout.sizeBytes
        payloadSha256 = layout.sha256
      } else {
        let sha = try copyFile(input, to: payload)
        guard sha == m.file.sha256 else {
          throw BackupError(
            .corrupt, "backup file \(m.file.name) fails its SHA-256 check", hint: "nothing was exported")
        }
        payloadSize = m.file.sizeBytes
        payloadSha256 = m.file.sha256
      }
      try encrypting?.finish()
      copy.file = .init(name: fileName, sizeBytes: hashing.bytesWritten, sha256: hashing.finalizeHex())
      if let e = options.encryption {
        copy.encryption = e.manifestInfo(payloadSize: payloadSize, payloadSha256: payloadSha256)
      }
      copy.formatVersion = max(copy.formatVersion, copy.minimumFormatVersion)
      try out.close(sync: true)
      try copy.validate()
      guard rename(try target.path(of: tempName), filePath) == 0 else {
        throw BackupError(.storage, "cannot rename into \(filePath): \(String(cString: strerror(errno)))")
      }
      target.syncDirectory()
    } catch {
      out.abandon()
      try? target.remove(tempName)
      throw error
    }
    if options.includeMetadata {
      try target.writeAtomically(manifestName, try copy.encoded())
    }
    return ExportOutcome(
      id: m.id, file: filePath, manifest: options.includeMetadata ? manifestPath : nil,
      sizeBytes: copy.file.sizeBytes, sha256: copy.file.sha256, compression: algorithm,
      recompressed: recompress)
  }

  /// A folder (existing, ending in `/`, or a new name without a dot) takes the default file
  /// name; anything else is the file path itself.
  func exportTarget(_ destination: String, defaultName: String) throws -> (String, String) {
    guard !destination.isEmpty else { throw BackupError(.usage, "the export destination is empty") }
    let path = BackupDirectory.absolute(destination)
    var isDir: ObjCBool = false
    let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
    let last = (path as NSString).lastPathComponent
    if (exists && isDir.boolValue) || destination.hasSuffix("/") || (!exists && !last.contains(".")) {
      return (path, defaultName)
    }
    return ((path as NSString).deletingLastPathComponent, last)
  }

  /// Copies a whole file, returning its SHA-256.
  func copyFile(_ input: RandomAccessInput, to out: ByteOutput) throws -> String {
    var digest = SHA256Digest()
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    var offset: Int64 = 0
    while true {
      let n = try buffer.withUnsafeMutableBytes { try input.read(at: offset, into: $0) }
      if n == 0 { break }
      try buffer.withUnsafeBytes {
        let slice = UnsafeRawBufferPointer(rebasing: $0[0..<n])
        digest.update(slice)
        try out.write(slice)
      }
      offset += Int64(n)
    }
    return digest.finalizeHex()
  }
}

// MARK: import

extension BackupService {
  public struct ImportOptions: Sendable {
    public var source: String
    public var verify: Bool
    /// What `DatabaseLocator` accepts (a connection name already resolved): recorded as the
    /// backup's database.
    public var database: String?
    public var force: Bool
    /// For dumps: the compression of the new backup (default zstd).
    public var compression: CompressionAlgorithm?
    public var level: Int?
    public var name: String?
    public init(
      source: String, verify: Bool = false, database: String? = nil, force: Bool = false,
      compression: CompressionAlgorithm? = nil, level: Int? = nil, name: String? = nil
    ) {
      self.source = source
      self.verify = verify
      self.database = database
      self.force = force
      self.compression = compression
      self.level = level
      self.name = name
    }
  }

  public struct ImportOutcome: Codable, Sendable {
    /// `ai-shell` (an exported backup with its manifest), `sqlite3-dump`, `pg_dump` or `mariadb-dump`.
    public var sourceKind: String
    public var source: String
    public var backup: BackupSummary
    public var verification: VerifyReport?
  }

  public func importBackup(_ options: ImportOptions) throws -> ImportOutcome {
    let source = BackupDirectory.absolute(options.source)
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: source, isDirectory: &isDir) else {
      throw BackupError(.notFound, "\(source) does not exist")
    }
    guard !isDir.boolValue else {
      throw BackupError(.usage, "\(source) is a folder", hint: "give the backup file or its manifest")
    }
    let id: String
    let kind: String
    if let manifestPath = try findManifest(for: source) {
      id = try importExported(manifestPath: manifestPath, options: options)
      kind = "ai-shell"
    } else {
      id = try importDump(source, options: options)
      switch (try? manifest(for: id))?.database.engine {
      case .mysql: kind = "mariadb-dump"
      case .postgres: kind = "pg_dump"
      default: kind = "sqlite3-dump"
      }
    }
    var report: VerifyReport?
    if options.verify {
      let r = try verify(id, deep: true, test: true)
      report = r
      if !r.ok {
        if let entry = try? catalog.resolve(id) { _ = try? delete(entry) }
        let failed = r.checks.filter { !$0.ok }.map(\.detail).joined(separator: "; ")
        throw BackupError(
          .verifyFailed, "imported backup failed verification: \(failed)", hint: "it was removed")
      }
    }
    return ImportOutcome(sourceKind: kind, source: source, backup: try status(id), verification: report)
  }

  /// The manifest of an exported backup: the path itself when it is a manifest, else
  /// `<id>.manifest.json` beside the file, else a manifest beside it that names the file.
  func findManifest(for source: String) throws -> String? {
    let dir = (source as NSString).deletingLastPathComponent
    let name = (source as NSString).lastPathComponent
    if name.hasSuffix(".manifest.json") { return source }
    let id = String(name.prefix { $0 != "." })
    let sibling = (dir as NSString).appendingPathComponent(Catalog.manifestName(id))
    if BackupID.isValid(id), FileManager.default.fileExists(atPath: sibling) { return sibling }
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    for candidate in names.sorted() where candidate.hasSuffix(".manifest.json") {
      let path = (dir as NSString).appendingPathComponent(candidate)
      guard let data = FileManager.default.contents(atPath: path), let m = try? Manifest.decode(data) else {
        continue
      }
      if m.file.name == name { return path }
    }
    return nil
  }

  func importExported(manifestPath: String, options: ImportOptions) throws -> String {
    guard let data = FileManager.default.contents(atPath: manifestPath) else {
      throw BackupError(.notFound, "cannot read \(manifestPath)")
    }
    var m: Manifest
    do {
      m = try Manifest.decode(data)
    } catch {
      throw BackupError(.corrupt, "\(manifestPath) is not a valid ai-shell manifest")
    }
    try m.validate()  // id is a BackupID, the file name is one plain component
    let dir = (manifestPath as NSString).deletingLastPathComponent
    let sourceFile = (dir as NSString).appendingPathComponent(m.file.name)
    let input: LocalFileInput
    do {
      input = try LocalStore(directory: dir).openForReading(m.file.name)
    } catch {
      throw BackupError(.notFound, "the backup file \(sourceFile) named by \(manifestPath) is missing")
    }
    let size = input.size
    guard size == m.file.sizeBytes else {
      throw BackupError(
        .corrupt, "\(sourceFile) has \(size) bytes, its manifest records \(m.file.sizeBytes)",
        hint: "the file is truncated or damaged; nothing was imported")
    }
    // stored as <id><suffixes of the exported name>
    let suffix = m.file.name.firstIndex(of: ".").map { String(m.file.name[$0...]) } ?? ""
    let fileName = m.id + suffix
    _ = try store.path(of: fileName)
    if let database = options.database {
      let locator = try DatabaseLocator(database)
      guard locator.engineKind == m.database.engine else {
        throw BackupError(
          .usage,
          "backup \(m.id) is a \(m.database.engine.rawValue) backup, \(database) is a \(locator.engineKind.rawValue) database"
        )
      }
      m.database.location = locator.location
    }
    try makeRoom(for: m.id, fileName: fileName, force: options.force)
    try store.ensureDirectory()
    let tempName = ".\(fileName).tmp-\(getpid())"
    try? store.remove(tempName)
    let out = try store.create(tempName)
    do {
      let sha = try copyFile(input, to: out)
      guard sha == m.file.sha256 else {
        throw BackupError(
          .corrupt, "\(sourceFile) fails its SHA-256 check (the manifest records another)",
          hint: "the file is damaged; nothing was imported")
      }
      try out.close(sync: true)
      guard rename(try store.path(of: tempName), try store.path(of: fileName)) == 0 else {
        throw BackupError(
          .storage, "cannot rename into \(store.directory): \(String(cString: strerror(errno)))")
      }
      m.file.name = fileName
      try m.validate()
      try store.writeAtomically(Catalog.manifestName(m.id), try m.encoded())
    } catch {
      out.abandon()
      try? store.remove(tempName)
      try? store.remove(fileName)
      throw error
    }
    logger.info("imported \(m.id) from \(sourceFile)")
    return m.id
  }

  /// Refuses an id that already exists unless `force`, which removes the existing backup.
  func makeRoom(for id: String, fileName: String, force: Bool) throws {
    let existing = try catalog.entry(id: id)
    guard existing != nil || store.exists(fileName) || store.exists(Catalog.manifestName(id)) else { return }
    guard force else {
      throw BackupError(
        .refused, "backup \(id) already exists in \(store.directory)", hint: "use --force to replace it")
    }
    if let existing { _ = try delete(existing) }
    try store.remove(fileName)
    try store.remove(Catalog.manifestName(id))
  }

  func importDump(_ source: String, options: ImportOptions) throws -> String {
    // an age-encrypted dump (`… | age -r KEY > dump.sql.gz.age`) is read through the identity and
    // stored encrypted again, to the same keys: importing never leaves its plaintext on disk
    var input: RandomAccessInput = try LocalFileInput(path: source)
    var reencrypt: EncryptionRequest?
    var magic = [UInt8](repeating: 0, count: Age.magic.count)
    let got = try magic.withUnsafeMutableBytes { try input.read(at: 0, into: $0) }
    if got == magic.count && magic == Age.magic {
      guard !keys.isEmpty else {
        throw BackupError(
          .usage, "\(source) is age-encrypted",
          hint: "give --identity FILE, or the passphrase in AI_SHELL_PASSPHRASE / --passphrase-file")
      }
      input = try AgeDecryptingInput(input: input, identities: try keys.identities(), armored: false)
      reencrypt = try keys.encryptionRequest()
    }
    let (compression, head) = try DumpSniffer.sniff(input, name: source)
    let text = String(decoding: head, as: UTF8.self)
    if head.starts(with: Array("PGDMP".utf8)) {
      throw BackupError(
        .usage, "\(source) is a pg_dump archive in the custom format",
        hint: "import a plain-format dump (pg_dump -Fp, optionally gzip/bzip2/zstd-compressed)")
    }
    if text.contains("-- MySQL dump") || text.contains("-- MariaDB dump")
      || MariaDBPlainDump.looksLikeDump(head)
    {
      return try importMySQLDump(
        source, input: input, compression: compression, reencrypt: reencrypt, options: options)
    }
    let engine: EngineKind = PGPlainDump.looksLikeDump(head) ? .postgres : .sqlite
    guard engine == .postgres || SQLitePlainDump.looksLikeDump(head) else {
      throw BackupError(
        .usage, "\(source) is not a backup",
        hint:
          "expected an ai-shell backup with its manifest beside it, or a plain dump (sqlite3 .dump, optionally gzip/bzip2/zstd-compressed)"
      )
    }
    var location = ""
    if let database = options.database {
      let locator = try DatabaseLocator(database)
      guard locator.engineKind == engine else {
        throw BackupError(
          .usage,
          "a \(engine == .postgres ? "pg_dump" : "sqlite3") dump cannot belong to a \(locator.engineKind.rawValue) database"
        )
      }
      location = locator.location
    }
    return try storeConvertedDump(
      source, input: input, compression: compression, reencrypt: reencrypt, options: options, engine: engine,
      location: location
    ) { open, sink in
      if engine == .postgres {
        let result = try PGPlainDump.convert(try open(), to: sink)
        return (result.objects, result.serverVersion + " (pg_dump)")
      }
      return (try SQLitePlainDump.convert(open: open, to: sink).objects, "unknown (sqlite3 .dump)")
    }
  }
}

/// Detects a compressed source by its magic bytes and returns the first decoded bytes.
enum DumpSniffer {
  static func compression(of magic: [UInt8]) -> CompressionAlgorithm {
    if magic.starts(with: [0x1F, 0x8B]) { return .gzip }
    if magic.starts(with: Array("BZh".utf8)) { return .bzip2 }
    if magic.starts(with: [0x28, 0xB5, 0x2F, 0xFD]) { return .zstd }
    return .none
  }

  static func sniff(_ input: RandomAccessInput, name path: String) throws -> (CompressionAlgorithm, [UInt8]) {
    var raw = [UInt8](repeating: 0, count: 64 * 1024)
    let got = try raw.withUnsafeMutableBytes { try input.read(at: 0, into: $0) }
    raw.removeLast(raw.count - got)
    let algorithm = compression(of: raw)
    guard algorithm != .none else { return (.none, raw) }
    let source = try DecodingFileSource(input: input, compression: algorithm)
    var head = [UInt8](repeating: 0, count: 64 * 1024)
    var filled = 0
    do {
      while filled < head.count {
        let n = try head.withUnsafeMutableBytes {
          try source.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[filled...]))
        }
        if n == 0 { break }
        filled += n
      }
    } catch {
      throw BackupError(
        .corrupt, "\(path) looks \(algorithm.rawValue)-compressed but does not decode", hint: "it is damaged")
    }
    return (algorithm, Array(head[0..<filled]))
  }
}

/// The decoded bytes of a (possibly compressed, possibly decrypted) file, streamed.
final class DecodingFileSource: ByteSource {
  private let input: RandomAccessInput
  private var offset: Int64 = 0
  private var chunk = [UInt8](repeating: 0, count: 256 * 1024)
  private let decompressor: StreamDecompressor?
  private var pending: [UInt8] = []
  private var pendingStart = 0
  private var finished = false

  init(input: RandomAccessInput, compression: CompressionAlgorithm) throws {
    self.input = input
    decompressor = compression == .none ? nil : try Codecs.decompressor(compression)
  }

  func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    while pendingStart >= pending.count {
      pending.removeAll(keepingCapacity: true)
      pendingStart = 0
      if finished { return 0 }
      let n = try chunk.withUnsafeMutableBytes { try input.read(at: offset, into: $0) }
      offset += Int64(n)
      if n == 0 {
        try decompressor?.finish { pending.append(contentsOf: $0) }
        finished = true
        continue
      }
      try chunk.withUnsafeBytes { all in
        let raw = UnsafeRawBufferPointer(rebasing: all[0..<n])
        if let decompressor {
          try decompressor.decompress(raw) { pending.append(contentsOf: $0) }
        } else {
          pending.append(contentsOf: raw)
        }
      }
    }
    let n = min(buffer.count, pending.count - pendingStart)
    pending.withUnsafeBytes { src in
      buffer.baseAddress!.copyMemory(from: src.baseAddress! + pendingStart, byteCount: n)
    }
    pendingStart += n
    return n
  }
}
