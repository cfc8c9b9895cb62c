import BackupEngines
import BackupModel
import Foundation
import Testing

/// What a server engine's dump produced in memory, and the restore requests built from it
/// (the PostgreSQL and MariaDB suites share it).
public struct EngineDump {
  public var sink: MemorySink
  public var result: DumpResult
  public var format: DumpFormat

  /// Dumps through `engine` at a fixed time (so two dumps of the same data are identical).
  public init(
    _ engine: BackupEngine, tables: [String]? = nil, format: DumpFormat = .sql, jobs: Int = 1,
    createdAt: Date
  ) throws {
    sink = MemorySink()
    result = try engine.dump(
      options: DumpOptions(
        format: format, tables: tables, lockTimeoutSeconds: 5, createdAt: createdAt, jobs: jobs), to: sink)
    self.format = format
  }

  public func request(
    tables: Set<String>? = nil, dropExisting: Bool = false, continueOnError: Bool = false, jobs: Int = 1
  ) -> RestoreRequest {
    var r = RestoreRequest(
      format: format,
      parts: sink.parts.map { RestorePart(kind: $0.kind, table: $0.table, rawSize: Int64($0.bytes.count)) },
      objects: result.objects, tables: tables, dropExisting: dropExisting, continueOnError: continueOnError,
      lockTimeoutSeconds: 5)
    r.jobs = jobs
    r.creation = result.creation
    return r
  }

  public var opener: MemoryParts { MemoryParts(sink.parts.map(\.bytes)) }
  public var tableParts: [MemorySink.Part] { sink.parts.filter { $0.kind == .table } }
  public var tables: [String] { tableParts.map { $0.table! } }
  public var text: String { String(decoding: sink.allBytes, as: UTF8.self) }

  /// Restores into `engine` while part `index` fails as a part with a bad SHA-256 does, after
  /// `after` of its bytes (half by default): the error the restore threw, nil if it did not.
  public func restoreError(
    into engine: BackupEngine, failingPart index: Int, after: Int? = nil, jobs: Int = 1,
    splitTableBytes: Int64? = nil
  )
    -> Error?
  {
    let parts = opener
    parts.failPart = index
    parts.failAfter = after ?? sink.parts[index].bytes.count / 2
    var r = request(jobs: jobs)
    if let splitTableBytes { r.splitTableBytes = splitTableBytes }
    do {
      _ = try engine.restore(r, parts: parts)
      return nil
    } catch {
      return error
    }
  }

  /// Restores into a database that does not exist yet (`exists` tells): the check says it
  /// would create it, the restore does, with no failed statement.
  public func restoreIntoNewDatabase(
    _ engine: BackupEngine, exists: () throws -> Bool, sourceLocation: SourceLocation = #_sourceLocation
  ) throws -> RestoreReport {
    let notes = try engine.checkRestore(request())
    #expect(notes.contains { $0.hasPrefix("would create database") }, sourceLocation: sourceLocation)
    #expect(try !exists(), "the check created the database", sourceLocation: sourceLocation)
    let report = try engine.restore(request(), parts: opener)
    #expect(report.statementsFailed == 0, sourceLocation: sourceLocation)
    #expect(report.notes.contains { $0.hasPrefix("created database") }, sourceLocation: sourceLocation)
    return report
  }

  /// Restores into `engine` once, then again: the check and the second restore must refuse
  /// (the tables exist now). Returns the second restore's error.
  public func restoreTwiceIsRefused(_ engine: BackupEngine, sourceLocation: SourceLocation = #_sourceLocation)
    throws -> BackupError?
  {
    _ = try engine.restore(request(), parts: opener)
    #expect(throws: BackupError.self, sourceLocation: sourceLocation) { try engine.checkRestore(request()) }
    let refused = #expect(
      throws: BackupError.self, "restore over existing tables must be refused", sourceLocation: sourceLocation
    ) {
      try engine.restore(request(), parts: opener)
    }
    #expect(refused?.status == .refused, sourceLocation: sourceLocation)
    return refused
  }

  /// How `stats` (an engine's row counts and content checksums) differ from those recorded in
  /// the dump, one line per difference; empty when they agree for every dumped table.
  public func mismatches(_ stats: [String: TableStats]) -> [String] {
    tableParts.flatMap { part -> [String] in
      let table = part.table!
      let s = stats[table]
      var out: [String] = []
      if s?.rows != part.rows {
        out.append("rows of \(table): \(String(describing: s?.rows)) != \(part.rows ?? -1)")
      }
      if s?.contentChecksum != part.contentChecksum {
        out.append("checksum of \(table): \(s?.contentChecksum ?? "-") != \(part.contentChecksum ?? "-")")
      }
      return out
    }
  }
}

/// Expects the row counts and content checksums `stats` (read from a restored database) to be
/// the ones recorded in `dumped`.
public func expectStatsMatch(
  _ stats: [String: TableStats], _ dumped: EngineDump, sourceLocation: SourceLocation = #_sourceLocation
) {
  #expect(dumped.mismatches(stats) == [], sourceLocation: sourceLocation)
}

/// A writer that moves money between two tables in transactions on a thread of its own while
/// a backup runs (the invariant, the sum, must hold in the backup), counting the transfers.
public final class ConcurrentTransfers: @unchecked Sendable {
  private let lock = NSLock()
  private var stopped = false
  private var n = 0
  private let done = DispatchSemaphore(value: 0)

  /// Starts `transfer(i)` for i = 1, 2, ... until `stop()`; `connect` opens the writer's
  /// connection (no transfers if it throws).
  public init<Connection>(
    connect: @escaping () throws -> Connection, transfer: @escaping (Connection, Int) -> Void
  ) {
    nonisolated(unsafe) let connect = connect
    nonisolated(unsafe) let transfer = transfer
    Thread.detachNewThread { [self] in
      defer { done.signal() }
      guard let db = try? connect() else { return }
      var i = 0
      while !lock.withLock({ stopped }) {
        i += 1
        transfer(db, i)
        lock.withLock { n = i }
      }
    }
  }

  public var count: Int { lock.withLock { n } }

  /// Waits until at least `n` transfers are done (or the writer gave up).
  public func waitFor(_ n: Int, seconds: TimeInterval = 60) {
    let deadline = Date().addingTimeInterval(seconds)
    while count < n && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
  }

  /// Runs `body` (a dump) once `warmUp` transfers are done, then stops the writer; expects
  /// transfers to have happened while `body` ran.
  public func during<T>(
    warmUp: Int = 50, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T
  )
    rethrows -> T
  {
    waitFor(warmUp)
    let before = count
    defer { stop() }
    let value = try body()
    #expect(count > before, "the writer must run during the dump", sourceLocation: sourceLocation)
    return value
  }

  /// Stops the writer and waits for its last transfer (once; later calls return at once).
  public func stop() {
    let first = lock.withLock {
      defer { stopped = true }
      return !stopped
    }
    if first { done.wait() }
  }
}

/// The errors of the three connection faults every server engine reports the same way: a
/// wrong password (`.database`), a missing database (`.notFound`, naming it) and no server
/// listening (`.database`). Each is expected to be one line holding none of `secrets`; the
/// errors are returned for the engine's own checks.
public func expectConnectionFaults(
  wrongPassword: BackupEngine, missingDatabase: (engine: BackupEngine, name: String), noServer: BackupEngine,
  secrets: [String], sourceLocation: SourceLocation = #_sourceLocation
) -> (wrongPassword: BackupError?, missingDatabase: BackupError?, noServer: BackupError?) {
  func fault(_ engine: BackupEngine, _ what: String, _ status: BackupModel.ExitStatus) -> BackupError? {
    let e = #expect(throws: BackupError.self, "\(what) must fail", sourceLocation: sourceLocation) {
      try engine.probe()
    }
    #expect(e?.status == status, "\(what): \(e.map { "\($0)" } ?? "-")", sourceLocation: sourceLocation)
    for secret in secrets {
      #expect(
        e?.description.contains(secret) == false, "\(what) shows a secret", sourceLocation: sourceLocation)
    }
    #expect(e?.description.contains("\n") == false, "\(what): one line", sourceLocation: sourceLocation)
    return e
  }
  let missing = fault(missingDatabase.engine, "a missing database", .notFound)
  #expect(missing?.description.contains(missingDatabase.name) == true, sourceLocation: sourceLocation)
  return (
    fault(wrongPassword, "a wrong password", .database), missing,
    fault(noServer, "a server not running", .database)
  )
}
