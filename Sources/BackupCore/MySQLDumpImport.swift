import BackupEngines
import BackupModel
import BackupPipeline
import Foundation

extension BackupService {
  /// `backup import` of a mariadb-dump / mysqldump script (optionally gzip/bzip2/zstd-compressed,
  /// optionally age-encrypted): converted into a standard MySQL/MariaDB sql backup (see
  /// docs/FORMAT.md, "Exported copies and imported dumps"). Row counts are counted from the
  /// INSERT statements; content checksums are absent (no server computed them), so `verify
  /// --test` compares row counts only.
  func importMySQLDump(
    _ source: String, input: RandomAccessInput, compression: CompressionAlgorithm,
    reencrypt: EncryptionRequest?,
    options: ImportOptions
  ) throws -> String {
    var location = ""
    if let database = options.database {
      let locator = try DatabaseLocator(database)
      guard locator.engineKind == .mysql else {
        throw BackupError(
          .usage, "a mariadb-dump script cannot belong to a \(locator.engineKind.rawValue) database")
      }
      location = locator.location
    }
    return try storeConvertedDump(
      source, input: input, compression: compression, reencrypt: reencrypt, options: options, engine: .mysql,
      location: location
    ) { open, sink in
      let result = try MariaDBPlainDump.convert(open: open, to: sink)
      return (result.objects, (result.serverVersion.map { "\($0) " } ?? "") + "(mariadb-dump)")
    }
  }

  /// Writes the backup a plain dump converts into (`convert` gets the decoded script, which it
  /// may open more than once, and the sink; it returns the objects and the server version to
  /// record), encrypted again when the dump was, and its manifest last.
  func storeConvertedDump(
    _ source: String, input: RandomAccessInput, compression: CompressionAlgorithm,
    reencrypt: EncryptionRequest?,
    options: ImportOptions, engine: EngineKind, location: String,
    convert: (() throws -> ByteSource, PartSink) throws -> (objects: [SchemaObject], serverVersion: String)
  ) throws -> String {
    let started = Date()
    let algorithm = options.compression ?? .zstd
    try store.ensureDirectory()
    let id = BackupID.make(at: started)
    let recipients = try reencrypt?.ageRecipients()
    let fileName =
      id + DumpFormat.sql.fileExtension + algorithm.fileExtension + (recipients != nil ? ".age" : "")
    let output = try store.create(fileName)
    do {
      let hashing = HashingOutput(output)
      let encrypting = try recipients.map { try AgeEncryptingOutput(output: hashing, recipients: $0) }
      let writer = try BackupFileWriter(
        output: encrypting ?? hashing, algorithm: algorithm, level: options.level)
      let (objects, serverVersion) = try convert(
        { try DecodingFileSource(input: input, compression: compression) }, writer)
      let layout = try writer.finish()
      try encrypting?.finish()
      try output.close(sync: true)
      let manifest = Manifest(
        id: id, name: options.name ?? "import of \((source as NSString).lastPathComponent)",
        createdAt: started, durationSeconds: Date().timeIntervalSince(started),
        database: .init(engine: engine, location: location, serverVersion: serverVersion, sizeBytes: nil),
        format: .sql,
        compression: .init(algorithm: algorithm, level: writer.level, memberSizeBytes: writer.memberSize),
        file: .init(name: fileName, sizeBytes: hashing.bytesWritten, sha256: hashing.finalizeHex()),
        rawSizeBytes: layout.rawSizeBytes, parts: layout.parts, objects: objects,
        encryption: reencrypt.map {
          $0.manifestInfo(payloadSize: layout.sizeBytes, payloadSha256: layout.sha256)
        },
        sha256Checkpoints: layout.checkpoints)
      try manifest.validate()
      try store.writeAtomically(Catalog.manifestName(id), try manifest.encoded())
    } catch {
      output.abandon()
      try? store.remove(fileName)
      try? store.remove(Catalog.manifestName(id))
      throw error
    }
    logger.info("imported \(source) as \(id)")
    return id
  }
}
