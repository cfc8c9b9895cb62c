import BackupModel
import CLibPQ
import Foundation

/// The PostgreSQL engine over libpq (and pg_dump for the schema). `url` is a libpq connection
/// URL or keyword string; the password comes from it, PGPASSWORD or ~/.pgpass (libpq's rules),
/// is handed to pg_dump only through its environment, and never appears in messages.
public struct PostgresEngine: BackupEngine {
  public let url: String
  /// The probe's connection (or the restore check's), kept for the dump (or the restore) that
  /// follows it: one connection and one authentication fewer; `connect()` takes it.
  let probed = PGIdleConnection()
  /// The restore check's connection to the maintenance database, kept for the restore that
  /// creates the target database.
  let maintenanceIdle = PGIdleConnection()
  /// The environment pg_dump is looked up in (`PGDumpTool.find`: AI_SHELL_PG_DUMP, PATH).
  var toolEnvironment = ProcessInfo.processInfo.environment

  public init(url: String) {
    self.url = url
  }

  public var kind: EngineKind { .postgres }

  /// The URL or conninfo with any password removed (for manifests and messages).
  public static func redact(_ url: String) -> String { ConnInfo.redact(url) }

  /// The same connection string pointed at another database on the same server.
  public static func url(_ url: String, replacingDatabase name: String) throws -> String {
    var info = try ConnInfo(url)
    info.options["dbname"] = name
    return info.keywordString(includePassword: true)
  }

  /// The database this engine connects to.
  public var databaseName: String {
    get throws { try ConnInfo(url).databaseName }
  }

  public func probe() throws -> DatabaseProbe {
    let db = try connect()
    let version = ((try db.query("SHOW server_version").first?.first) ?? nil) ?? "?"
    let size = (try db.query("SELECT pg_catalog.pg_database_size(current_database())").first?.first ?? nil)
      .flatMap { Int64($0) }
    let tables = try db.userTables().map(\.name)
    probed.put(db)
    return DatabaseProbe(engine: .postgres, serverVersion: version, sizeBytes: size, tables: tables)
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

  /// Drops this engine's database (used for `verify --test` scratch databases).
  public func dropDatabase() throws {
    try dropDatabase(try ConnInfo(url).databaseName)
  }
}

/// At most one idle connection, handed from one use to the next of the same engine.
final class PGIdleConnection: @unchecked Sendable {
  private let lock = NSLock()
  private var connection: PGConnection?

  func put(_ c: PGConnection) { lock.withLock { connection = c } }

  /// The kept connection, when it is outside a transaction and still answers (the server may
  /// have closed it meanwhile, e.g. idle_session_timeout); nil otherwise.
  func take() -> PGConnection? {
    let kept: PGConnection? = lock.withLock {
      defer { connection = nil }
      return connection
    }
    guard let c = kept, PQstatus(c.conn) == CONNECTION_OK, PQtransactionStatus(c.conn) == PQTRANS_IDLE,
      (try? c.query("SELECT 1")) != nil
    else { return nil }
    return c
  }
}
