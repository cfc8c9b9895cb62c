import BackupEngines
import Foundation

/// The URL of the real server a suite needs, from `variable` (AI_SHELL_TEST_PG_URL,
/// AI_SHELL_TEST_MARIADB_URL; scripts/test.sh sets them), or nil: the test then prints why it is
/// skipped and returns.
public func testServerURL(_ variable: String, test: String) -> String? {
  guard let url = ProcessInfo.processInfo.environment[variable], !url.isEmpty else {
    print("skipped: \(variable) not set (\(test))")
    return nil
  }
  return url
}

/// The parts of a test server's URL, so that its client tools get the password through the
/// environment (PGPASSWORD, MYSQL_PWD), never argv.
public struct ServerAddress: Sendable {
  public let url: String
  public let scheme: String
  public let host: String
  public let port: String
  public let user: String
  public let password: String

  public init(_ url: String, defaultPort: Int, defaultUser: String) {
    self.url = url
    let c = URLComponents(string: url)!
    scheme = c.scheme ?? "mysql"
    host = c.host ?? "127.0.0.1"
    port = String(c.port ?? defaultPort)
    user = c.user ?? defaultUser
    password = c.password ?? ""
  }

  /// A database's URL with the server's password (or `password`).
  public func url(db: String, password pw: String? = nil) -> String {
    "\(scheme)://\(user):\(pw ?? password)@\(host):\(port)/\(db)"
  }

  /// A database's URL without a password, as a user types it (the password then comes from
  /// PGPASSWORD / MYSQL_PWD).
  public func passwordlessURL(db: String) -> String { "\(scheme)://\(user)@\(host):\(port)/\(db)" }

  /// A new database name for a test: `t_<label>_<8 hex digits>`.
  public static func scratchName(_ label: String) -> String {
    "t_\(label)_\(UUID().uuidString.prefix(8).lowercased())"
  }
}

/// A test server on which tests make databases of their own (the PostgreSQL and MariaDB
/// suites' servers, reached with their client tools).
public protocol ScratchHost {
  associatedtype Engine: BackupEngine
  /// A database's URL with the server's password (or `password`).
  func url(db: String, password: String?) -> String
  func engine(url: String) -> Engine
  /// Runs a script in database `db` with the client tool; its output, trimmed.
  func run(_ db: String, _ sql: String) throws -> String
  func createDatabase(_ name: String) throws
  func databaseExists(_ name: String) throws -> Bool
  /// Drops the database, whoever is still connected to it; errors are ignored.
  func dropDatabase(_ name: String)
}

extension ScratchHost {
  /// A new empty database, dropped when the returned handle goes away.
  public func freshDatabase(_ label: String) throws -> ScratchDatabase<Self> {
    let s = unusedDatabase(label)
    try createDatabase(s.name)
    return s
  }

  /// A database name that does not exist yet (dropped at the end if a restore created it).
  public func unusedDatabase(_ label: String) -> ScratchDatabase<Self> {
    ScratchDatabase(server: self, name: ServerAddress.scratchName(label))
  }
}

/// One test's database on a `ScratchHost`, dropped when the handle goes away.
public final class ScratchDatabase<Server: ScratchHost> {
  public let server: Server
  public let name: String

  public init(server: Server, name: String) {
    self.server = server
    self.name = name
  }

  public var url: String { server.url(db: name, password: nil) }
  public var engine: Server.Engine { server.engine(url: url) }
  @discardableResult public func sql(_ script: String) throws -> String { try server.run(name, script) }
  public func exists() throws -> Bool { try server.databaseExists(name) }

  deinit { server.dropDatabase(name) }
}
