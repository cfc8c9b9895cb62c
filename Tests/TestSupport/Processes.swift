import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Runs a command line and returns (status, stdout, stderr). Used for interop checks with the
/// standard tools (sqlite3, gzip, zstd, tar, mariadb, psql), for running the built ai-shell
/// binary and for the test-server scripts.
///
/// It cannot hang on a child that leaves something running: stdin, stdout and stderr are
/// unlinked temporary files (opened close-on-exec, so no other child inherits them), never pipes,
/// so a daemon that a script starts in the background cannot hold an end open that we wait on,
/// and the exit is awaited with `waitpid` (posix_spawn, not Foundation's Process, which can miss
/// the exit of a script that started a daemon). The child leads a process group of its own;
/// after `timeout` seconds that whole group is killed (SIGKILL) and the call throws.
@discardableResult
public func runProcess(
  _ executable: String, _ arguments: [String], stdin: Data? = nil, environment: [String: String]? = nil,
  currentDirectory: String? = nil, timeout: TimeInterval = 900
) throws -> (status: Int32, stdout: Data, stderr: Data) {
  // a relative name is looked up in the child's PATH by env, which also changes directory
  let direct = executable.hasPrefix("/") && currentDirectory == nil
  let argv =
    (direct ? [] : ["/usr/bin/env"] + (currentDirectory.map { ["-C", $0] } ?? [])) + [executable] + arguments
  let env = ProcessInfo.processInfo.environment.merging(environment ?? [:]) { $1 }.map { "\($0)=\($1)" }

  let input = try ScratchFile(contents: stdin ?? Data())
  let output = try ScratchFile()
  let errors = try ScratchFile()
  var actions = posix_spawn_file_actions_t()
  posix_spawn_file_actions_init(&actions)
  defer { posix_spawn_file_actions_destroy(&actions) }
  posix_spawn_file_actions_adddup2(&actions, input.fd, 0)
  posix_spawn_file_actions_adddup2(&actions, output.fd, 1)
  posix_spawn_file_actions_adddup2(&actions, errors.fd, 2)
  var attributes = posix_spawnattr_t()
  posix_spawnattr_init(&attributes)
  defer { posix_spawnattr_destroy(&attributes) }
  // a group of its own (so a timeout kills all of it), default signal dispositions (this
  // process may ignore SIGPIPE) and nothing blocked
  var all = sigset_t()
  sigfillset(&all)
  var none = sigset_t()
  sigemptyset(&none)
  posix_spawnattr_setsigdefault(&attributes, &all)
  posix_spawnattr_setsigmask(&attributes, &none)
  posix_spawnattr_setpgroup(&attributes, 0)
  posix_spawnattr_setflags(
    &attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

  var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
  var cEnv: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
  defer { for p in cArgs + cEnv { free(p) } }
  var pid: pid_t = 0
  let rc = posix_spawn(&pid, argv[0], &actions, &attributes, &cArgs, &cEnv)
  guard rc == 0 else {
    throw RunnerError("cannot start \(executable): \(String(cString: strerror(rc)))")
  }

  let exit = ExitWaiter(pid)
  if !exit.wait(seconds: timeout) {
    kill(-pid, SIGKILL)
    _ = exit.wait(seconds: .infinity)
    let tail = String(decoding: errors.contents().suffix(2000), as: UTF8.self)
    throw RunnerError(
      "\(([executable] + arguments).joined(separator: " ").prefix(300)) did not finish in \(Int(timeout))s "
        + "(its process group was killed); stderr: \(tail)")
  }
  return (exit.status, output.contents(), errors.contents())
}

/// Runs a shell pipeline with bash (for interop checks such as `zstd -dc f | sqlite3 db`, and
/// for the test-server scripts, which may leave a daemon running).
@discardableResult
public func shell(_ script: String, environment: [String: String]? = nil, timeout: TimeInterval = 900) throws
  -> (status: Int32, stdout: String, stderr: String)
{
  let r = try runProcess(
    "/bin/bash", ["-c", "set -o pipefail; " + script], environment: environment, timeout: timeout)
  return (r.status, String(decoding: r.stdout, as: UTF8.self), String(decoding: r.stderr, as: UTF8.self))
}

/// An unlinked temporary file, open read-write and close-on-exec.
final class ScratchFile {
  let fd: Int32

  init(contents: Data = Data()) throws {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent(
      "ai-shell-io-\(UUID().uuidString)"
    )
    .path
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw RunnerError("cannot create \(path): \(String(cString: strerror(errno)))") }
    unlink(path)
    try contents.withUnsafeBytes { raw in
      var done = 0
      while done < raw.count {
        let n = write(fd, raw.baseAddress! + done, raw.count - done)
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
          throw RunnerError("cannot write a temporary file: \(String(cString: strerror(errno)))")
        }
        done += n
      }
    }
    lseek(fd, 0, SEEK_SET)
  }

  /// Everything in the file (from the start, whatever the offset).
  func contents() -> Data {
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    var offset: off_t = 0
    while true {
      let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, offset) }
      if n < 0 && errno == EINTR { continue }
      guard n > 0 else { break }
      data.append(contentsOf: buffer[0..<n])
      offset += off_t(n)
    }
    return data
  }

  deinit { close(fd) }
}

/// Waits for one child's exit on a thread of its own, so the wait can time out.
final class ExitWaiter: @unchecked Sendable {
  private let done = DispatchSemaphore(value: 0)
  private let lock = NSLock()
  private var code: Int32 = -1
  private var finished = false

  init(_ pid: pid_t) {
    Thread.detachNewThread { [self] in
      var raw: Int32 = 0
      var rc: pid_t = -1
      repeat { rc = waitpid(pid, &raw, 0) } while rc == -1 && errno == EINTR
      // exited: its code; killed by a signal: 128 + the signal, as a shell reports it; -1 when
      // the exit could not be read (someone else reaped the child): never a false success
      let status = rc != pid ? -1 : raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
      lock.withLock { code = status }
      done.signal()
    }
  }

  /// Whether the child exited within `seconds`.
  func wait(seconds: TimeInterval) -> Bool {
    if lock.withLock({ finished }) { return true }
    if seconds.isInfinite {
      done.wait()
    } else if done.wait(timeout: .now() + seconds) == .timedOut {
      return false
    }
    lock.withLock { finished = true }
    return true
  }

  var status: Int32 { lock.withLock { code } }
}
