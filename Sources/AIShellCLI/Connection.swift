import ArgumentParser
import BackupCore
import BackupModel
import Foundation

/// `ai-shell connection ...`: named databases in the config file.
public struct ConnectionCommand: ParsableCommand {
  public static let configuration = CommandConfiguration(
    commandName: "connection",
    abstract: "Add, list, test and remove named database connections.",
    discussion: """
      A connection name can be given wherever --database is. An inline password in a URL is moved \
      into a 0600 file next to the config (secrets/<name>.password) and never shown; ${ENV_VAR} \
      references in a URL are resolved when it is used.
      """,
    subcommands: [Add.self, List.self, Test.self, Remove.self])
  public init() {}

  struct Add: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Store a named connection.")

    @Argument(help: "Connection name (letters, digits, -, _, .).")
    var name: String

    @Argument(
      help: "sqlite:///abs/path.db, a SQLite path, postgres://, mysql://, mariadb:// or mongodb:// URL.")
    var url: String

    @Flag(help: "Connect first and store the connection only if that works.")
    var test = false

    @Flag(help: "Replace an existing connection of that name.")
    var force = false

    @OptionGroup var common: CommonOptions

    func run() throws {
      let store = common.configStore
      if test {
        _ = try ResolvedDatabase.resolve(url, config: Config()).probe()
      }
      let stored = try store.addConnection(name: name, url: url, replace: force)
      if common.json {
        print(try Render.json(ConnectionInfo(name: name, stored)))
      } else {
        print("added connection \(name): \(ConnectionURL.redact(stored.url))")
        if stored.passwordFile != nil { print("  password stored in \(stored.passwordFile!) (mode 0600)") }
      }
    }
  }

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "List the stored connections (passwords never shown).")

    @OptionGroup var common: CommonOptions

    func run() throws {
      let config = try common.loadConfig()
      let items = config.connections.keys.sorted().map { ConnectionInfo(name: $0, config.connections[$0]!) }
      if common.json {
        print(try Render.json(items))
      } else if items.isEmpty {
        printStderr("no connections in \(common.configStore.path)")
      } else {
        print(
          Render.table(
            ["NAME", "ENGINE", "URL", "PASSWORD"],
            items.map { [$0.name, $0.engine, $0.url, $0.passwordFile == nil ? "-" : "file"] }))
      }
    }
  }

  struct Test: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Connect and print the engine, server version, database size and table count.")

    @Argument(help: "A connection name, a URL or a SQLite path.")
    var target: String

    @OptionGroup var common: CommonOptions

    struct Output: Encodable {
      var target: String
      var engine: String
      var serverVersion: String
      var sizeBytes: Int64?
      var tables: Int
    }

    func run() throws {
      let resolved = try ResolvedDatabase.resolve(target, config: try common.loadConfig())
      let p = try resolved.probe()
      let out = Output(
        target: resolved.display, engine: p.engine, serverVersion: p.serverVersion, sizeBytes: p.sizeBytes,
        tables: p.tables.count)
      if common.json {
        print(try Render.json(out))
      } else {
        print("connection ok: \(out.target)")
        print("engine    \(out.engine)")
        print("version   \(out.serverVersion)")
        print("size      \(Render.bytes(out.sizeBytes))")
        print("tables    \(out.tables)")
      }
    }
  }

  struct Remove: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Remove a stored connection (and its password file).")

    @Argument(help: "The connection name.")
    var name: String

    @OptionGroup var common: CommonOptions

    func run() throws {
      _ = try common.configStore.removeConnection(name: name)
      print(common.json ? "{\"removed\":\"\(name)\"}" : "removed connection \(name)")
    }
  }
}

struct ConnectionInfo: Encodable {
  var name: String
  var engine: String
  /// Always without a password.
  var url: String
  var passwordFile: String?

  init(name: String, _ c: Config.Connection) {
    self.name = name
    engine = ConnectionURL.engine(ofStored: c.url) ?? "unknown"
    url = ConnectionURL.redact(c.url)
    passwordFile = c.passwordFile
  }
}
