import Foundation

/// A database server of one test's own, started by the project's script for that engine
/// (scripts/pg-test-server.sh, scripts/mariadb-test-server.sh) in a directory of its own and on
/// the first free port after the main test server's, so the test may stop or kill it while the
/// other tests go on against the main one. Stopped (by the script) when it goes away.
public final class OwnTestServer {
  public let port: String
  public let directory = TempDir("ai-shell-own-server")
  let script: String
  let environment: [String: String]

  /// - Parameters:
  ///   - script: the script's name under scripts/.
  ///   - portVariable: the variable that gives the script its port (PG_PORT, MARIADB_PORT).
  ///   - mainPort: the main test server's port; this one takes a free port above it.
  ///   - environment: more for the script (the password variable, so both servers share one).
  public init(script: String, portVariable: String, mainPort: Int, environment: [String: String]) throws {
    self.script = Self.scriptPath(script)
    var chosen = ""
    var env: [String: String] = [:]
    var last: (status: Int32, stdout: String, stderr: String) = (1, "", "")
    // the script refuses a port in use: try the next candidate then
    for offset in stride(from: 17, to: 400, by: 23) {
      chosen = String(mainPort + offset)
      env = environment.merging([portVariable: chosen, "AI_SHELL_TEST_DIR": directory.path]) { $1 }
      last = try shell("'\(self.script)' start 2>&1", environment: env, timeout: 180)
      if !last.stdout.contains("already in use") { break }
    }
    port = chosen
    self.environment = env
    guard last.status == 0 else {
      throw RunnerError("\(script) start failed (\(last.status)): \(last.stdout)")
    }
  }

  /// Runs the script with `command` (start, stop, restart) for this server; returns its output.
  @discardableResult
  public func run(_ command: String) throws -> String {
    let r = try shell("'\(script)' \(command) 2>&1", environment: environment, timeout: 180)
    guard r.status == 0 else { throw RunnerError("\(script) \(command) failed (\(r.status)): \(r.stdout)") }
    return r.stdout
  }

  /// Kills the process whose id is on the first line of `pidFile` (a path under `directory`)
  /// with `signal`, as a crash or the OOM killer would: no shutdown, connections just drop.
  public func kill(pidFile: String, signal: Int32 = SIGKILL) throws {
    let text = try String(contentsOfFile: directory.file(pidFile), encoding: .utf8)
    guard
      let pid = text.split(separator: "\n").first.flatMap({ pid_t($0.trimmingCharacters(in: .whitespaces)) })
    else { throw RunnerError("no process id in \(pidFile)") }
    guard Foundation.kill(pid, signal) == 0 else {
      throw RunnerError("kill \(pid) failed: \(String(cString: strerror(errno)))")
    }
  }

  deinit { _ = try? run("stop") }

  /// scripts/<name> in this checkout.
  public static func scriptPath(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("scripts/\(name)").path
  }
}

/// Work on a thread of its own, whose outcome the test collects later (with a timeout, so a
/// hung job fails the test instead of hanging it).
public final class BackgroundJob<Value>: @unchecked Sendable {
  private let done = DispatchSemaphore(value: 0)
  private let lock = NSLock()
  private var outcome: Result<Value, Error>?

  public init(_ body: @escaping () throws -> Value) {
    nonisolated(unsafe) let body = body
    Thread.detachNewThread { [self] in
      let r = Result { try body() }
      lock.withLock { outcome = r }
      done.signal()
    }
  }

  /// The outcome, or nil when the job is still running after `seconds`.
  public func wait(seconds: TimeInterval) -> Result<Value, Error>? {
    if let r = lock.withLock({ outcome }) { return r }
    guard done.wait(timeout: .now() + seconds) == .success else { return nil }
    return lock.withLock { outcome }
  }
}

/// Waits until the files in `directory` whose names start with `prefix` (but for those in
/// `ignoring`) hold at least `bytes` bytes together; false after `seconds`.
public func waitForData(
  in directory: String, prefix: String = "backup-", atLeast bytes: Int, ignoring: [String] = [],
  seconds: TimeInterval
) -> Bool {
  let deadline = Date().addingTimeInterval(seconds)
  while Date() < deadline {
    let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    let size = files.filter { $0.hasPrefix(prefix) && !ignoring.contains($0) }.compactMap {
      (try? FileManager.default.attributesOfItem(atPath: directory + "/" + $0)[.size] as? NSNumber)?.intValue
    }.reduce(0, +)
    if size >= bytes { return true }
    Thread.sleep(forTimeInterval: 0.02)
  }
  return false
}
