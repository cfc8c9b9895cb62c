import Foundation
import Glibc

/// scripts/flaky-proxy.py in front of a test server: answers the first `fails` requests with
/// 503 SlowDown, then forwards. `stop()` and `start()` again on the same port stand for a
/// server that dies mid-transfer and comes back.
public final class FlakyProxy {
  public let upstream: String
  public private(set) var port = 0
  private var process: Process?

  public static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("scripts/flaky-proxy.py")
    .path

  /// `upstream` is `host:port`.
  public init(upstream: String, fails: Int = 0) throws {
    self.upstream = upstream
    try start(fails: fails)
  }

  public var endpoint: String { "http://127.0.0.1:\(port)" }

  /// Starts the proxy (on the port it had, after a `stop`) and waits until it listens.
  public func start(fails: Int = 0) throws {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", Self.script, upstream, String(fails), String(port)]
    let out = Pipe()
    p.standardOutput = out
    try p.run()
    process = p
    var line = Data()
    while !line.contains(0x0A) {
      let chunk = out.fileHandleForReading.availableData
      if chunk.isEmpty { break }
      line.append(chunk)
    }
    guard let n = Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    else {
      stop()
      throw RunnerError("flaky-proxy.py did not start (port \(port) busy?)")
    }
    port = n
  }

  /// Kills the proxy at once (SIGKILL): every connection through it breaks, new ones are refused.
  public func stop() {
    guard let p = process else { return }
    Glibc.kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()
    process = nil
  }

  deinit { stop() }
}
