import BackupModel
import Foundation

/// The default for `--jobs`: the number of cores, capped at 4 (more rarely helps a dump and
/// loads the server the backup is taken from).
public let defaultJobs = min(max(1, ProcessInfo.processInfo.activeProcessorCount), 4)

/// What `connection test` and `backup create` learn about a database before dumping it.
public struct DatabaseProbe: Sendable, Equatable {
  public var engine: EngineKind
  public var serverVersion: String
  public var sizeBytes: Int64?
  public var tables: [String]
  public init(engine: EngineKind, serverVersion: String, sizeBytes: Int64?, tables: [String]) {
    self.engine = engine
    self.serverVersion = serverVersion
    self.sizeBytes = sizeBytes
    self.tables = tables
  }
}

public struct DumpOptions: Sendable {
  public var format: DumpFormat
  /// Exact table names to dump; nil dumps every table. A name that does not exist is an error
  /// (`.notFound`) naming it, raised before anything is written.
  public var tables: [String]?
  /// How long to wait for a lock held by another connection before failing with `.database`.
  public var lockTimeoutSeconds: Double
  /// The backup's creation time (tar entries in the csv format carry it as mtime).
  public var createdAt: Date
  /// How many tables a server engine may dump at once (all from the one snapshot); the parts
  /// are still written in a deterministic order. SQLite dumps through one connection.
  public var jobs: Int

  public init(
    format: DumpFormat, tables: [String]? = nil, lockTimeoutSeconds: Double = 10, createdAt: Date = Date(),
    jobs: Int = 1
  ) {
    self.jobs = max(1, jobs)
    self.format = format
    self.tables = tables
    self.lockTimeoutSeconds = lockTimeoutSeconds
    self.createdAt = createdAt
  }
}

public struct DumpResult: Sendable {
  public var serverVersion: String
  public var sizeBytes: Int64?
  /// Every schema object dumped, in creation order (goes into the manifest).
  public var objects: [SchemaObject]
  /// The binary log position of the snapshot (MySQL/MariaDB), recorded in the manifest.
  public var replicationPosition: Manifest.ReplicationPosition?
  /// The source database's encoding and locale (PostgreSQL), recorded in the manifest.
  public var creation: Manifest.DatabaseCreation?
  /// Things the user should be told (logged as warnings by the caller).
  public var warnings: [String]
  public init(
    serverVersion: String, sizeBytes: Int64?, objects: [SchemaObject],
    replicationPosition: Manifest.ReplicationPosition? = nil, creation: Manifest.DatabaseCreation? = nil,
    warnings: [String] = []
  ) {
    self.serverVersion = serverVersion
    self.sizeBytes = sizeBytes
    self.objects = objects
    self.replicationPosition = replicationPosition
    self.creation = creation
    self.warnings = warnings
  }
}

/// One part to apply during a restore, in file order.
public struct RestorePart: Sendable, Equatable {
  public var kind: PartKind
  public var table: String?
  /// The part's decoded size, when known (the manifest's `rawSize`): parallel restores load the
  /// biggest tables first and may split a big one over several connections.
  public var rawSize: Int64?
  public init(kind: PartKind, table: String?, rawSize: Int64? = nil) {
    self.kind = kind
    self.table = table
    self.rawSize = rawSize
  }
}

public struct RestoreRequest: Sendable {
  public var format: DumpFormat
  /// The parts to read, in file order: the schema part, the chosen table parts, the post-data part.
  public var parts: [RestorePart]
  /// The manifest's schema objects.
  public var objects: [SchemaObject]
  /// The tables to restore; nil restores everything in the backup.
  public var tables: Set<String>?
  public var dropExisting: Bool
  public var continueOnError: Bool
  /// How long to wait for a lock on the target.
  public var lockTimeoutSeconds: Double
  /// How many tables a server engine may load at once (`--jobs`); SQLite loads through one
  /// connection.
  public var jobs = 1
  /// With `jobs` > 1, a table part of at least this many decoded bytes is loaded over several
  /// connections at once where the engine can (PostgreSQL, sql format).
  public var splitTableBytes: Int64 = 64 << 20
  /// The source database's encoding and locale (PostgreSQL): a restore that creates its target
  /// creates it so, where the target server has them.
  public var creation: Manifest.DatabaseCreation?

  public init(
    format: DumpFormat, parts: [RestorePart], objects: [SchemaObject], tables: Set<String>?,
    dropExisting: Bool, continueOnError: Bool, lockTimeoutSeconds: Double = 10
  ) {
    self.format = format
    self.parts = parts
    self.objects = objects
    self.tables = tables
    self.dropExisting = dropExisting
    self.continueOnError = continueOnError
    self.lockTimeoutSeconds = lockTimeoutSeconds
  }
}

extension RestoreRequest {
  /// The backup's tables this request restores (for server engines, whose tables are named in
  /// `objects` and the parts); `.notFound` for a `--tables` name that is not in the backup.
  public func restoredTables() throws -> Set<String> {
    let known = Set(objects.filter { $0.type == "table" }.map(\.name)).union(parts.compactMap(\.table))
    guard let wanted = tables else { return known }
    for t in wanted.sorted() where !known.contains(t) {
      throw BackupError(.notFound, "table \"\(t)\" is not in the backup")
    }
    return wanted
  }
}

/// Opens the decoded bytes of `request.parts[index]`. The stream verifies the part's SHA-256
/// and throws `.corrupt` when it reaches the end of a part that does not match, so an engine
/// that commits only after consuming every part never commits corrupt data.
public protocol PartOpener {
  func open(_ index: Int) throws -> ByteSource
}

public struct TableRestoreResult: Sendable, Codable, Equatable {
  public var name: String
  public var rows: Int64
  public init(name: String, rows: Int64) {
    self.name = name
    self.rows = rows
  }
}

public struct RestoreReport: Sendable, Codable, Equatable {
  public var statementsExecuted: Int
  public var statementsFailed: Int
  /// The first few failure messages (one line each).
  public var errors: [String]
  public var tables: [TableRestoreResult]
  /// Things the user should know (objects skipped, tables dropped first, the target created).
  public var notes: [String]
  public init(
    statementsExecuted: Int = 0, statementsFailed: Int = 0, errors: [String] = [],
    tables: [TableRestoreResult] = [], notes: [String] = []
  ) {
    self.statementsExecuted = statementsExecuted
    self.statementsFailed = statementsFailed
    self.errors = errors
    self.tables = tables
    self.notes = notes
  }
}

public struct TableStats: Sendable, Equatable {
  public var rows: Int64
  public var contentChecksum: String
  public init(rows: Int64, contentChecksum: String) {
    self.rows = rows
    self.contentChecksum = contentChecksum
  }
}

/// One database engine: the same value is a backup source and a restore target.
public protocol BackupEngine: Sendable {
  var kind: EngineKind { get }

  /// Connects and describes the database; `.notFound` / `.database` errors name what is wrong.
  func probe() throws -> DatabaseProbe

  /// Writes the schema part, one part per table and the post-data part, in that order, all from
  /// one consistent snapshot. Every table part ends with its row count and content checksum.
  func dump(options: DumpOptions, to sink: PartSink) throws -> DumpResult

  /// Checks a restore without writing anything: the target can be opened or created, and no
  /// object of the backup already exists unless `dropExisting`. Throws `.refused` naming the
  /// conflicting objects; returns notes describing what the restore would do.
  func checkRestore(_ request: RestoreRequest) throws -> [String]

  /// Applies the parts in one transaction where the engine allows it; on any error (other than a
  /// statement error under `continueOnError`) nothing is left applied.
  func restore(_ request: RestoreRequest, parts: PartOpener) throws -> RestoreReport

  /// Row counts and content checksums of the given tables, computed as `dump` computes them.
  func tableStats(_ tables: [String]) throws -> [String: TableStats]
}
