import Foundation
import TestSupport
import Testing

/// The helper that runs every child process of the tests cannot hang them.
@Suite struct ProcessRunnerTests {
  /// A script that leaves a process running with its stdout and stderr (as a server script's
  /// daemon would) returns when the script exits, with what the script wrote.
  @Test func aBackgroundChildHoldingTheOutputDoesNotBlock() throws {
    let started = Date()
    let r = try shell("sleep 30 & echo \"started $!\"; echo oops >&2")
    #expect(Date().timeIntervalSince(started) < 10)
    #expect(r.status == 0)
    #expect(r.stderr == "oops\n")
    let pid = try #require(
      r.stdout.split(separator: " ").last.flatMap { pid_t($0.trimmingCharacters(in: .newlines)) })
    kill(pid, SIGKILL)
  }

  /// Past its timeout the child's whole process group is killed and the call throws.
  @Test func aTimeoutKillsTheProcessGroup() throws {
    let dir = TempDir()
    let pidFile = dir.file("pid")
    let started = Date()
    #expect(throws: RunnerError.self) {
      try shell("sleep 60 & echo $! > '\(pidFile)'; sleep 60", timeout: 1)
    }
    #expect(Date().timeIntervalSince(started) < 20)
    let pid = try #require(
      pid_t(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .newlines)))
    // gone, or a zombie waiting for its reaper: either way no longer running
    let state = try shell("ps -o stat= -p \(pid) || true").stdout.trimmingCharacters(
      in: .whitespacesAndNewlines)
    #expect(state.isEmpty || state.hasPrefix("Z"), "the background child survived: \(state)")
  }

  /// stdin reaches the child whole, and a child that does not read it still ends.
  @Test func stdinIsDeliveredAndMayBeIgnored() throws {
    let big = Data((0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
    let dir = TempDir()
    try big.write(to: URL(fileURLWithPath: dir.file("in")))
    let viaStdin = try runProcess("sha256sum", [], stdin: big)
    let viaFile = try shell("sha256sum < '\(dir.file("in"))'")
    #expect(viaStdin.status == 0)
    #expect(String(decoding: viaStdin.stdout, as: UTF8.self) == viaFile.stdout)
    #expect(try runProcess("true", [], stdin: big).status == 0)
  }
}
