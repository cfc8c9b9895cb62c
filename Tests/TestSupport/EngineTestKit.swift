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
      format: format, parts: sink.parts.map { RestorePart(kind: $0.kind, table: $0.table) },
      objects: result.objects, tables: tables, dropExisting: dropExisting, continueOnError: continueOnError,
      lockTimeoutSeconds: 5)
    r.jobs = jobs
    return r
  }

  public var opener: MemoryParts { MemoryParts(sink.parts.map(\.bytes)) }
  public var tableParts: [MemorySink.Part] { sink.parts.filter { $0.kind == .table } }
  public var tables: [String] { tableParts.map { $0.table! } }
  public var text: String { String(decoding: sink.allBytes, as: UTF8.self) }

  /// Restores into `engine` while part `index` fails as a part with a bad SHA-256 does, after
  /// `after` of its bytes (half by default): the error the restore threw, nil if it did not.
  public func restoreError(
    into engine: BackupEngine, failingPart index: Int, after: Int? = nil, jobs: Int = 1
  )
    -> Error?
  {
    let parts = opener
    parts.failPart = index
    parts.failAfter = after ?? sink.parts[index].bytes.count / 2
    do {
      _ = try engine.restore(request(jobs: jobs), parts: parts)
      return nil
    } catch {
      return error
    }
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

  /// Stops the writer and waits for its last transfer.
  public func stop() {
    lock.withLock { stopped = true }
    done.wait()
  }
}
