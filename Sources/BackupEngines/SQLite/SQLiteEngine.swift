import BackupModel
import CSQLite
import Foundation

/// The SQLite engine: a database file is both a backup source and a restore target.
public struct SQLiteEngine: BackupEngine {
  public let path: String

  public init(path: String) {
    self.path = path
  }

  public var kind: EngineKind { .sqlite }

  public func probe() throws -> DatabaseProbe {
    let db = try openSnapshot(lockTimeoutSeconds: 5)
    let tables = try db.userTables().map(\.name)
    try? db.exec("COMMIT")
    return DatabaseProbe(
      engine: .sqlite, serverVersion: String(cString: sqlite3_libversion()), sizeBytes: fileSize(),
      tables: tables)
  }

  public func dump(options: DumpOptions, to sink: PartSink) throws -> DumpResult {
    try dumpImpl(options: options, to: sink)
  }

  public func checkRestore(_ request: RestoreRequest) throws -> [String] {
    try checkRestoreImpl(request)
  }

  public func restore(_ request: RestoreRequest, parts: PartOpener) throws -> RestoreReport {
    try restoreImpl(request, parts: parts)
  }

  public func tableStats(_ tables: [String]) throws -> [String: TableStats] {
    try tableStatsImpl(tables)
  }
}
