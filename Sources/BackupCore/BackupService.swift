import BackupEngines
import BackupModel
import BackupPipeline
import BackupStorage
import Foundation
import Logging

/// The operations behind the `backup` commands. Each CLI command calls one method and renders
/// its result.
public final class BackupService {
  public let store: LocalStore
  public let catalog: Catalog
  public var logger: Logger
  /// PostgreSQL and MySQL/MariaDB: the server (URL, password allowed) `verify --test` makes its
  /// scratch database on; nil uses the backup's recorded location (password from
  /// PGPASSWORD/~/.pgpass, MYSQL_PWD/~/.my.cnf).
  public var testRestoreServer: String?
  public weak var progress: ProgressObserver?
  /// Identities and passphrase for reading encrypted backups.
  public var keys = DecryptionKeys()
  /// `--cloud`: the blob store backups are also written to and read from (CloudBackups.swift).
  public var cloud: BlobStore?
  /// With `cloud`: `create` keeps the local file and manifest too.
  public var keepLocalCopy = true

  public init(backupDirectory: String, logger: Logger = Logger(label: "ai-shell")) {
    store = LocalStore(directory: backupDirectory)
    catalog = Catalog(store: store)
    self.logger = logger
  }

  // MARK: create

  public struct CreateOptions: Sendable {
    public var database: String
    public var name: String?
    public var compression: CompressionAlgorithm
    public var level: Int?
    public var format: DumpFormat
    public var tables: [String]?
    public var verify: Bool
    public var lockTimeoutSeconds: Double
    /// Encrypt the file with age to these recipients (nil: no encryption).
    public var encryption: EncryptionRequest?
    /// Tables dumped at once by a server engine.
    public var jobs = defaultJobs
    public init(
      database: String, name: String? = nil, compression: CompressionAlgorithm = .zstd, level: Int? = nil,
      format: DumpFormat = .sql, tables: [String]? = nil, verify: Bool = false,
      lockTimeoutSeconds: Double = 10, encryption: EncryptionRequest? = nil
    ) {
      self.encryption = encryption
      self.database = database
      self.name = name
      self.compression = compression
      self.level = level
      self.format = format
      self.tables = tables
      self.verify = verify
      self.lockTimeoutSeconds = lockTimeoutSeconds
    }
  }

  public func create(_ options: CreateOptions) throws -> BackupSummary {
    let started = Date()
    // fail closed before any work: an encrypted backup with no usable recipient never starts
    let recipients = try options.encryption?.ageRecipients()
    let locator = try DatabaseLocator(options.database)
    let engine = locator.engine()
    // connect and check the request before anything is written
    let probe = try engine.probe()
    // exact names and globs become the exact list of tables to dump, checked before any write
    let tables = try options.tables.map {
      try TablePatterns.resolve($0, among: probe.tables, place: "in \(locator.location)")
    }
    try store.ensureDirectory()
    // what dead creates left (cloud uploads and files of other machines after a day), as the
    // next run of restic or pgBackRest tidies up after a crash
    for item in try cleanUp(dryRun: false).removed {
      logger.info("removed \(item.kind.rawValue) \(item.location)")
    }

    let id = BackupID.make(at: started)
    let fileName =
      id + options.format.fileExtension + options.compression.fileExtension
      + (recipients != nil ? ".age" : "")
    let target = try CreateTarget(
      name: fileName, id: id, directory: store, keepLocal: keepLocalCopy, cloud: cloud)
    logger.info("backing up \(locator.location) to \(target.description)")
    do {
      // file <- (when encrypted: SHA-256 of the file <- age) <- members; the writer hashes the
      // members' stream, which is the file when it is not encrypted
      let hashing = recipients.map { _ in HashingOutput(target.output) }
      let encrypting = try recipients.map { try AgeEncryptingOutput(output: hashing!, recipients: $0) }
      let writer = try BackupFileWriter(
        output: encrypting ?? target.output, algorithm: options.compression, level: options.level)
      let progress = self.progress
      // progress through the source when the engine reports it (against the database size),
      // else the bytes produced so far
      // with --cloud the upload streams alongside, so this is the upload's progress too
      progress?.begin(cloud == nil ? "backup" : "backup+upload", totalBytes: probe.sizeBytes)
      var sourceReported = false
      // an upload counts only what the store has acknowledged, not what the dump produced
      let upload = target.upload
      func uploaded() { if let upload { progress?.confirmed(upload.confirmedBytes) } }
      writer.sourceProgress = { read in
        sourceReported = true
        progress?.advance(to: read)
        uploaded()
      }
      writer.progress = { raw, _ in
        if !sourceReported { progress?.advance(to: raw) }
        uploaded()
      }
      let dumped = try engine.dump(
        options: DumpOptions(
          format: options.format, tables: tables, lockTimeoutSeconds: options.lockTimeoutSeconds,
          createdAt: started, jobs: options.jobs),
        to: writer)
      for w in dumped.warnings { logger.warning("\(w)") }
      let layout = try writer.finish()
      try encrypting?.finish()
      try target.finish()
      uploaded()
      progress?.end()
      let manifest = Manifest(
        id: id, name: options.name, createdAt: started, durationSeconds: Date().timeIntervalSince(started),
        database: .init(
          engine: locator.engineKind, location: locator.location, serverVersion: dumped.serverVersion,
          sizeBytes: dumped.sizeBytes, replicationPosition: dumped.replicationPosition,
          creation: dumped.creation),
        format: options.format,
        compression: .init(
          algorithm: options.compression, level: writer.level, memberSizeBytes: writer.memberSize),
        file: .init(
          name: fileName, sizeBytes: hashing?.bytesWritten ?? layout.sizeBytes,
          sha256: hashing?.finalizeHex() ?? layout.sha256),
        rawSizeBytes: layout.rawSizeBytes, parts: layout.parts, objects: dumped.objects,
        encryption: options.encryption.map {
          $0.manifestInfo(payloadSize: layout.sizeBytes, payloadSha256: layout.sha256)
        },
        sha256Checkpoints: layout.checkpoints)
      try manifest.validate()
      if options.verify {
        // an encrypted backup can be decoded only with a key: without one, re-hash the file
        var report = try verifyFile(manifest, deep: manifest.encryption == nil || !keys.isEmpty)
        if manifest.encryption != nil && keys.isEmpty {
          let hash = try sha256OfFile(try source(for: manifest).open(fileName))
          report.checks.append(
            .init(name: "file sha256", ok: hash == manifest.file.sha256, detail: "re-read after writing"))
        }
        guard report.ok else {
          let failed = report.checks.first { !$0.ok }!
          throw BackupError(.corrupt, "the written backup failed verification: \(failed.detail)")
        }
      }
      var final = manifest
      final.durationSeconds = Date().timeIntervalSince(started)
      // the manifest goes last (to the cloud first): a file without one is unfinished
      try target.publish(Catalog.manifestName(id), try final.encoded())
      logger.info("backup \(id) complete: \(layout.sizeBytes) bytes")
      var summary = BackupSummary(
        entry: CatalogEntry(id: id, status: .complete, manifest: final, fileName: fileName),
        directory: store.directory)
      if let cloud {
        summary.location = target.localStore == nil ? "cloud" : "local+cloud"
        summary.cloudFile = "\(cloud.location)/\(fileName)"
        if target.localStore == nil { summary.file = nil }
      }
      return summary
    } catch {
      target.abandon(manifestName: Catalog.manifestName(id))
      throw error
    }
  }

  // MARK: list / status

  public func list() throws -> [BackupSummary] {
    try catalog.summaries { [logger] problem in logger.warning("\(problem)") }.map {
      BackupSummary($0, directory: store.directory)
    }
  }

  /// Resolves an id and loads its manifest (`.corrupt` if the manifest is damaged).
  public func manifest(for idOrPrefix: String) throws -> Manifest {
    do {
      let entry = try catalog.resolve(idOrPrefix)
      // a damaged one has none: loading it again throws what is wrong with it
      return try entry.manifest ?? catalog.loadManifest(entry.id)
    } catch let e as BackupError where e.status == .notFound && cloud != nil {
      return try cloudManifest(for: idOrPrefix)
    }
  }

  public func status(_ idOrPrefix: String) throws -> BackupSummary {
    let m = try manifest(for: idOrPrefix)
    return BackupSummary(
      entry: CatalogEntry(id: m.id, status: .complete, manifest: m, fileName: m.file.name),
      directory: store.directory)
  }

  // MARK: reading stored files

  /// The stored file and the byte stream its parts lie in (the decrypted payload of an
  /// encrypted backup, else the file itself), with a count of the file bytes read.
  func openPayload(_ m: Manifest) throws -> (payload: RandomAccessInput, file: CountingInput) {
    let file = CountingInput(try source(for: m).open(m.file.name))
    guard m.encryption != nil else { return (file, file) }
    guard !keys.isEmpty else {
      throw BackupError(
        .usage, "backup \(m.id) is encrypted (age, to \(m.encryption!.recipients.count) recipient(s))",
        hint: "give --identity FILE, or the passphrase in AI_SHELL_PASSPHRASE / --passphrase-file")
    }
    let payload = try AgeDecryptingInput(input: file, identities: try keys.identities(), armored: false)
    guard payload.size == m.payloadSizeBytes else {
      throw BackupError(
        .corrupt,
        "backup \(m.id): the encrypted payload has \(payload.size) bytes, the manifest records \(m.payloadSizeBytes)"
      )
    }
    return (payload, file)
  }

  // MARK: verify

  /// Level 1: the manifest is sane and the file exists with the recorded size. With `deep`, the
  /// whole file's SHA-256 and every part's decoded SHA-256 and size. With `test`, a restore into
  /// a scratch database whose per-table row counts and content checksums must equal the
  /// recorded ones.
  public func verify(_ idOrPrefix: String, deep: Bool, test: Bool) throws -> VerifyReport {
    let m = try manifest(for: idOrPrefix)
    var report = try verifyFile(m, deep: deep)
    if test && report.ok {
      report.checks.append(contentsOf: try testRestore(m))
    }
    return report
  }

  func verifyFile(_ m: Manifest, deep: Bool) throws -> VerifyReport {
    var checks: [VerifyReport.Check] = [
      .init(name: "manifest", ok: true, detail: "format version \(m.formatVersion), \(m.parts.count) parts")
    ]
    let size = try source(for: m).stat(m.file.name)
    guard let size else {
      checks.append(.init(name: "file", ok: false, detail: "\(m.file.name) is missing"))
      return VerifyReport(id: m.id, checks: checks)
    }
    guard size == m.file.sizeBytes else {
      checks.append(
        .init(
          name: "file", ok: false,
          detail: "\(m.file.name) has \(size) bytes, the manifest records \(m.file.sizeBytes)"))
      return VerifyReport(id: m.id, checks: checks)
    }
    checks.append(.init(name: "file", ok: true, detail: "\(m.file.name), \(size) bytes"))
    guard deep else { return VerifyReport(id: m.id, checks: checks) }

    let input = try source(for: m).open(m.file.name)
    // an unencrypted file is its payload: with checkpoints (format version 4) the parts' checks
    // together hash every byte of it once and end in its SHA-256, so it is not read twice
    let fileCheckedByParts = m.payloadChain != nil && m.encryption == nil
    // ... and a local one, where the multi-lane kernels run, is hashed first stretch by stretch,
    // up to 16 at once (PayloadChainCheck: a third of one pass's CPU); its parts are then only
    // decoded and sized. If that check fails, the parts' own checks name the damaged ones.
    let chainFirst = fileCheckedByParts && input is MappableInput && PayloadChainCheck.availableKernels != 0
    progress?.begin(
      "verify", totalBytes: (fileCheckedByParts && !chainFirst ? 0 : m.file.sizeBytes) + m.payloadSizeBytes)
    var done: Int64 = 0
    let tick: (Int) -> Void = { [progress] n in
      done += Int64(n)
      progress?.advance(to: done)
    }
    var chainFailure: BackupError?
    if chainFirst, let chain = m.payloadChain {
      do {
        try PayloadChainCheck.check(chain: chain, input: input, label: "backup file \(m.file.name)")
      } catch let e as BackupError where e.status == .corrupt {
        chainFailure = e
      }
      tick(Int(m.file.sizeBytes))
    }
    let bytesProven = chainFirst && chainFailure == nil
    if !fileCheckedByParts {
      let fileHash = try sha256OfFile(input, onBytes: tick)
      checks.append(
        .init(
          name: "file sha256", ok: fileHash == m.file.sha256,
          detail: fileHash == m.file.sha256
            ? fileHash : "is \(fileHash), the manifest records \(m.file.sha256)"))
    }
    let payload: RandomAccessInput
    do {
      payload = try openPayload(m).payload
    } catch let e as BackupError where e.status == .corrupt {
      progress?.end()
      checks.append(.init(name: "encryption", ok: false, detail: e.description))
      return VerifyReport(id: m.id, checks: checks)
    }
    if m.encryption != nil {
      checks.append(.init(name: "encryption", ok: true, detail: "age header opens with the given identity"))
    }
    var partsOK = 0
    for part in m.parts {
      let label = partLabel(part)
      do {
        let reader = try PartReader(
          input: payload, part: part, chain: m.payloadChain, algorithm: m.compression.algorithm, label: label,
          checksHash: !bytesProven)
        reader.onStoredBytes = tick
        try reader.drain()
        partsOK += 1
      } catch let e as BackupError {
        checks.append(.init(name: label, ok: false, detail: e.description))
      }
    }
    progress?.end()
    if fileCheckedByParts {
      let ok = partsOK == m.parts.count && chainFailure == nil
      checks.append(
        .init(
          name: "file sha256", ok: ok,
          detail: bytesProven
            ? "\(m.file.sha256) (stretch by stretch between its checkpoints)"
            : ok
              ? "\(m.file.sha256) (through the parts' checkpoints)"
              : chainFailure?.message ?? "not confirmed: a part does not match (below)"))
    }
    checks.append(
      .init(
        name: "parts", ok: partsOK == m.parts.count,
        detail: bytesProven
          ? "\(partsOK) of \(m.parts.count) parts decode to their recorded sizes"
          : "\(partsOK) of \(m.parts.count) parts decode and match their SHA-256"))
    return VerifyReport(id: m.id, checks: checks)
  }

  private func testRestore(_ m: Manifest) throws -> [VerifyReport.Check] {
    // an encrypted backup's plaintext never goes to disk: its scratch copy lives in memory (tmpfs)
    let base: URL
    if m.encryption != nil {
      guard FileManager.default.isWritableFile(atPath: "/dev/shm") else {
        throw BackupError(
          .refused, "verify --test of an encrypted backup needs /dev/shm (memory) for its scratch copy",
          hint: "run verify --deep instead, or restore into a database of your choice")
      }
      base = URL(fileURLWithPath: "/dev/shm")
    } else {
      base = FileManager.default.temporaryDirectory
    }
    let scratch = base.appendingPathComponent("ai-shell-verify-\(m.id)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: scratch) }
    let engine: BackupEngine
    switch m.database.engine {
    case .sqlite: engine = SQLiteEngine(path: scratch.appendingPathComponent("scratch.db").path)
    case .postgres:
      // a scratch database on the backup's server (password from PGPASSWORD or ~/.pgpass)
      let name = "ai_shell_verify_\(UUID().uuidString.prefix(8).lowercased())"
      let pg = PostgresEngine(
        url: try PostgresEngine.url(testRestoreServer ?? m.database.location, replacingDatabase: name))
      engine = pg
    case .mysql:
      // a scratch database on the backup's server (password from MYSQL_PWD or ~/.my.cnf)
      let name = "ai_shell_verify_\(UUID().uuidString.prefix(8).lowercased())"
      engine = MariaDBEngine(
        url: try MariaDBEngine.url(testRestoreServer ?? m.database.location, replacingDatabase: name))
    }
    defer { if let pg = engine as? PostgresEngine { try? pg.dropDatabase() } }
    defer { if let my = engine as? MariaDBEngine { try? my.dropDatabase() } }
    var (request, indices) = restoreRequest(m, tables: nil, dropExisting: false, continueOnError: false)
    request.jobs = defaultJobs
    let input = try openPayload(m).payload
    _ = try engine.restore(
      request, parts: Opener(manifest: m, input: input, indices: indices, labeler: partLabel))
    let tables = m.tableParts.compactMap(\.table)
    let stats = try engine.tableStats(tables)
    var checks: [VerifyReport.Check] = []
    var mismatches: [String] = []
    for part in m.tableParts {
      let name = part.table!
      guard let s = stats[name] else {
        mismatches.append("\(name): missing after restore")
        continue
      }
      if s.rows != part.rows {
        mismatches.append("\(name): \(s.rows) rows, recorded \(part.rows ?? -1)")
      } else if let recorded = part.contentChecksum, s.contentChecksum != recorded {
        mismatches.append("\(name): content checksum differs")
      }
    }
    checks.append(
      .init(
        name: "test restore", ok: mismatches.isEmpty,
        detail: mismatches.isEmpty
          ? "\(tables.count) tables restored into a scratch database; row counts and content checksums match"
          : mismatches.joined(separator: "; ")))
    return checks
  }

  // MARK: restore

  public struct RestoreOptions: Sendable {
    public var target: String?
    public var tables: [String]?
    public var dryRun: Bool
    public var verify: Bool
    public var dropExisting: Bool
    public var continueOnError: Bool
    public var lockTimeoutSeconds: Double
    /// Tables loaded at once by a server engine. 1 (the default) restores in one transaction;
    /// more load tables on separate connections (`--jobs`).
    public var jobs = 1
    public init(
      target: String? = nil, tables: [String]? = nil, dryRun: Bool = false, verify: Bool = false,
      dropExisting: Bool = false, continueOnError: Bool = false, lockTimeoutSeconds: Double = 10
    ) {
      self.target = target
      self.tables = tables
      self.dryRun = dryRun
      self.verify = verify
      self.dropExisting = dropExisting
      self.continueOnError = continueOnError
      self.lockTimeoutSeconds = lockTimeoutSeconds
    }
  }

  public struct RestoreOutcome: Codable, Sendable {
    public var id: String
    public var target: String
    public var dryRun: Bool
    public var tables: [TableRestoreResult]
    /// What a dry run would do, or what the restore noted.
    public var notes: [String]
    public var statementsExecuted: Int
    public var statementsFailed: Int
    public var errors: [String]
    /// Bytes of the stored file read by the restore itself (less than the file for --tables).
    public var bytesRead: Int64
    public var fileSizeBytes: Int64
    public var durationSeconds: Double
  }

  public func restore(_ idOrPrefix: String, options: RestoreOptions) throws -> RestoreOutcome {
    let started = Date()
    let m = try manifest(for: idOrPrefix)
    guard let targetText = options.target ?? (m.database.location.isEmpty ? nil : m.database.location) else {
      throw BackupError(
        .usage, "backup \(m.id) does not record which database it came from",
        hint: "give the restore target with -d/--database")
    }
    let locator = try DatabaseLocator(targetText)
    guard locator.engineKind == m.database.engine else {
      throw BackupError(
        .usage,
        "backup \(m.id) is a \(m.database.engine.rawValue) backup; it cannot be restored into a \(locator.engineKind.rawValue) database"
      )
    }
    let backupTables = m.tableParts.compactMap(\.table)
    let selected = try options.tables.map {
      Set(
        try TablePatterns.resolve(
          $0, among: backupTables, place: "in backup \(m.id)", defaultSchema: m.database.engine.defaultSchema)
      )
    }
    // cheap checks always; full checksums first with --verify
    let size = try source(for: m).stat(m.file.name)
    guard let size else { throw BackupError(.notFound, "backup file \(m.file.name) is missing") }
    guard size == m.file.sizeBytes else {
      throw BackupError(
        .corrupt, "backup file \(m.file.name) has \(size) bytes, the manifest records \(m.file.sizeBytes)",
        hint: "the file is truncated or damaged; nothing was restored")
    }
    var (request, indices) = restoreRequest(
      m, tables: selected, dropExisting: options.dropExisting, continueOnError: options.continueOnError)
    request.lockTimeoutSeconds = options.lockTimeoutSeconds
    request.jobs = options.jobs
    // opening the payload checks the identity before anything is written
    let (input, fileInput) = try openPayload(m)
    if options.verify {
      let file = try source(for: m).open(m.file.name)
      // the payload's bytes proven by the file's SHA-256: the parts are then decoded and sized only
      var proven = false
      if m.encryption == nil, let chain = m.payloadChain, file is MappableInput {
        // a local unencrypted file of format version 4: checked stretch by stretch between its
        // checkpoints, up to 16 at once (a quarter of one SHA-256 pass's CPU)
        do {
          try PayloadChainCheck.check(chain: chain, input: file, label: "backup file \(m.file.name)")
        } catch let e as BackupError {
          throw BackupError(e.status, e.message, hint: "nothing was restored")
        }
        proven = true
      } else if try sha256OfFile(file) != m.file.sha256 {
        throw BackupError(
          .corrupt, "backup file \(m.file.name) fails its SHA-256 check", hint: "nothing was restored")
      }
      for i in indices {
        try PartReader(
          input: input, part: m.parts[i], chain: m.payloadChain, algorithm: m.compression.algorithm,
          label: partLabel(m.parts[i]), checksHash: !proven
        )
        .drain()
      }
    }
    let engine = locator.engine()
    let notes = try engine.checkRestore(request)
    let selectedParts = indices.map { m.parts[$0] }
    if options.dryRun {
      let tables = selectedParts.filter { $0.kind == .table }.map {
        TableRestoreResult(name: $0.table!, rows: $0.rows ?? 0)
      }
      return RestoreOutcome(
        id: m.id, target: locator.location, dryRun: true, tables: tables,
        notes: notes + [
          "would read \(selectedParts.reduce(0) { $0 + $1.storedLength }) of \(m.file.sizeBytes) bytes"
        ],
        statementsExecuted: 0, statementsFailed: 0, errors: [], bytesRead: 0, fileSizeBytes: m.file.sizeBytes,
        durationSeconds: Date().timeIntervalSince(started))
    }
    let opener = Opener(manifest: m, input: input, indices: indices, labeler: partLabel)
    let total = selectedParts.reduce(0) { $0 + $1.storedLength }
    progress?.begin("restore", totalBytes: total)
    opener.progress = progress
    let before = fileInput.bytesRead
    let report = try engine.restore(request, parts: opener)
    progress?.end()
    return RestoreOutcome(
      id: m.id, target: locator.location, dryRun: false, tables: report.tables, notes: report.notes,
      statementsExecuted: report.statementsExecuted, statementsFailed: report.statementsFailed,
      errors: report.errors, bytesRead: fileInput.bytesRead - before, fileSizeBytes: m.file.sizeBytes,
      durationSeconds: Date().timeIntervalSince(started))
  }

  /// The parts a restore reads, in file order: every non-table part and the chosen tables.
  func restoreRequest(_ m: Manifest, tables: Set<String>?, dropExisting: Bool, continueOnError: Bool) -> (
    RestoreRequest, [Int]
  ) {
    var indices: [Int] = []
    for (i, p) in m.parts.enumerated() where p.kind != .table || tables == nil || tables!.contains(p.table!) {
      indices.append(i)
    }
    var request = RestoreRequest(
      format: m.format,
      parts: indices.map {
        RestorePart(kind: m.parts[$0].kind, table: m.parts[$0].table, rawSize: m.parts[$0].rawSize)
      },
      objects: m.objects, tables: tables, dropExisting: dropExisting, continueOnError: continueOnError)
    request.creation = m.database.creation
    return (request, indices)
  }

  func partLabel(_ p: Manifest.Part) -> String {
    switch p.kind {
    case .table: return "table \"\(p.table ?? "")\""
    case .schema: return "schema part"
    case .postData: return "post-data part"
    }
  }

  // MARK: delete

  public struct DeleteOutcome: Codable, Sendable {
    public var id: String
    public var removedFiles: [String]
  }

  /// Finds what `delete` would remove (complete or unfinished backups).
  public func deletionCandidate(_ idOrPrefix: String) throws -> CatalogEntry {
    let entry: CatalogEntry
    do {
      entry = try catalog.resolve(idOrPrefix, includeUnfinished: true)
    } catch let e as BackupError where e.status == .notFound && cloud != nil {
      return try cloudDeletionCandidate(idOrPrefix)
    }
    if entry.status == .inProgress {
      throw BackupError(
        .refused, "backup \(entry.id) is still being written by another process",
        hint: "wait for it to finish or stop that process first")
    }
    return entry
  }

  public func delete(_ entry: CatalogEntry) throws -> DeleteOutcome {
    var removed: [String] = []
    // the manifest goes first: from then on the backup is no longer listed as complete
    let manifestName = Catalog.manifestName(entry.id)
    if store.exists(manifestName) {
      try store.remove(manifestName)
      removed.append(manifestName)
    }
    if let file = entry.fileName ?? entry.manifest?.file.name, store.exists(file) {
      try store.remove(file)
      removed.append(file)
    }
    store.syncDirectory()
    removed += try deleteFromCloud(entry.id)
    return DeleteOutcome(id: entry.id, removedFiles: removed)
  }
}

/// Opens `PartReader`s over the stored file for the engine, counting the bytes read.
final class Opener: PartOpener {
  let manifest: Manifest
  let input: RandomAccessInput
  let indices: [Int]
  let labeler: (Manifest.Part) -> String
  var bytesRead: Int64 = 0
  weak var progress: ProgressObserver?

  init(
    manifest: Manifest, input: RandomAccessInput, indices: [Int], labeler: @escaping (Manifest.Part) -> String
  ) {
    self.manifest = manifest
    self.input = input
    self.indices = indices
    self.labeler = labeler
  }

  func open(_ index: Int) throws -> ByteSource {
    let part = manifest.parts[indices[index]]
    let reader = try PartReader(
      input: input, part: part, chain: manifest.payloadChain, algorithm: manifest.compression.algorithm,
      label: labeler(part))
    reader.onStoredBytes = { [self] n in
      bytesRead += Int64(n)
      progress?.advance(to: bytesRead)
    }
    return reader
  }
}
