import Foundation

/// Runs the built `ai-shell` binary as a user would: a fresh backup directory per instance,
/// no inherited AI_SHELL_* settings, no terminal on stdin.
public final class AIShellRunner {
  public let work = TempDir("ai-shell-e2e")
  public var backupDir: String { work.file("backups") }
  /// The config file every run uses (`AI_SHELL_CONFIG`), so tests never read the user's.
  public var configPath: String { work.file("config/config.json") }

  public init() {}

  /// The binary next to the test bundle (`swift build` puts both in the same folder), or
  /// `$AI_SHELL_BIN`.
  public static var binary: String {
    if let env = ProcessInfo.processInfo.environment["AI_SHELL_BIN"] { return env }
    let exe =
      (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
      ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
    // the test executable may live inside a .xctest bundle directory
    while !dir.path.isEmpty && dir.path != "/" {
      let candidate = dir.appendingPathComponent("ai-shell").path
      if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
      dir = dir.deletingLastPathComponent()
    }
    return "ai-shell"
  }

  public struct Result {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    /// The last non-empty line of stdout (create prints the id there).
    public var lastLine: String {
      stdout.split(separator: "\n").last.map(String.init) ?? ""
    }
    public var json: Any? { try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) }
  }

  @discardableResult
  public func run(_ arguments: [String], environment: [String: String] = [:], stdin: Data? = nil) throws
    -> Result
  {
    var env = environment
    env["AI_SHELL_BACKUP_DIR"] = env["AI_SHELL_BACKUP_DIR"] ?? backupDir
    env["AI_SHELL_CONFIG"] = env["AI_SHELL_CONFIG"] ?? configPath
    let r = try runProcess(Self.binary, arguments, stdin: stdin, environment: env)
    return Result(
      status: r.status, stdout: String(decoding: r.stdout, as: UTF8.self),
      stderr: String(decoding: r.stderr, as: UTF8.self))
  }

  /// `backup create` that must succeed; returns the new id.
  public func create(_ arguments: [String], environment: [String: String] = [:]) throws -> String {
    let r = try run(["backup", "create"] + arguments, environment: environment)
    guard r.status == 0 else {
      throw RunnerError("create failed (\(r.status)): \(r.stderr)")
    }
    return r.lastLine
  }

  /// Files in the backup directory.
  public func backupFiles() -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: backupDir)) ?? []).sorted()
  }
}

public struct RunnerError: Error, CustomStringConvertible {
  public var description: String
  public init(_ d: String) { description = d }
}

/// Builds a SQLite database with the sqlite3 CLI.
public func makeSQLite(_ path: String, _ sql: String) throws {
  let r = try runProcess("sqlite3", [path], stdin: Data(sql.utf8))
  guard r.status == 0 else {
    throw RunnerError("sqlite3 failed: \(String(decoding: r.stderr, as: UTF8.self))")
  }
}

/// `sqlite3 <path> <command>` output.
public func sqlite3(_ path: String, _ command: String) throws -> String {
  let r = try runProcess("sqlite3", [path, command])
  guard r.status == 0 else {
    throw RunnerError("sqlite3 failed: \(String(decoding: r.stderr, as: UTF8.self))")
  }
  return String(decoding: r.stdout, as: UTF8.self)
}
