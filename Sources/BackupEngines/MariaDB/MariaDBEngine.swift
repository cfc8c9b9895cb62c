import BackupModel
import Foundation

/// The MySQL/MariaDB engine over libmariadb. `url` is `mysql://user:password@host:port/db?...`
/// (or `mariadb://`); the password comes from the URL, else MYSQL_PWD, else the option files
/// (`~/.my.cnf` [client], or `defaults-file=` in the URL query), and never appears in messages.
public struct MariaDBEngine: BackupEngine {
  public let url: String

  public init(url: String) {
    self.url = url
  }

  public var kind: EngineKind { .mysql }

  /// The URL with any password removed (for manifests and messages).
  public static func redact(_ url: String) -> String { MyURL.redact(url) }

  /// The same URL pointed at another database on the same server.
  public static func url(_ url: String, replacingDatabase name: String) throws -> String {
    try MyURL(url).text(database: name)
  }

  /// The database this engine works on (`.usage` when the URL names none).
  var databaseName: String {
    get throws {
      let u = try MyURL(url)
      guard let db = u.database else {
        throw BackupError(
          .usage, "the MySQL/MariaDB URL \(MyURL.redact(url)) names no database",
          hint: "add it as the path: mysql://user@host:port/database")
      }
      return db
    }
  }

  func connect(selectDatabase: Bool = true) throws -> MyConnection {
    if selectDatabase { _ = try databaseName }
    return try MyConnection(try MyURL(url), selectDatabase: selectDatabase)
  }

  public func probe() throws -> DatabaseProbe {
    let db = try connect()
    try db.setStableSession()
    let size = try db.query(
      "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
    ).first?.first??.split(separator: ".").first.flatMap { Int64($0) }
    let tables = try db.catalogTables().filter { $0.isBaseTable }.map(\.name)
    return DatabaseProbe(engine: .mysql, serverVersion: db.serverVersion, sizeBytes: size, tables: tables)
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
    let name = try databaseName
    let admin = try connect(selectDatabase: false)
    try admin.exec("DROP DATABASE IF EXISTS \(myIdent(name))")
  }
}
