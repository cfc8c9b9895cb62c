import BackupModel
import CMalloc
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The local backup directory: the first implementation of the blob-store shape every backend
/// will share (streamed put, ranged get, stat, list, delete). Names are single path components;
/// anything that could escape the directory is refused.
public final class LocalStore: Sendable {
  public let directory: String

  public init(directory: String) {
    self.directory = directory
  }

  /// Creates the directory (mode 0700) if it is missing.
  public func ensureDirectory() throws {
    var isDir: ObjCBool = false
    if FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) {
      guard isDir.boolValue else {
        throw BackupError(.storage, "backup directory \(directory) is not a directory")
      }
      return
    }
    do {
      try FileManager.default.createDirectory(
        atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    } catch {
      throw BackupError(
        .storage, "cannot create backup directory \(directory): \(error.localizedDescription)")
    }
  }

  /// The absolute path of `name`, refusing names that are not one plain component.
  public func path(of name: String) throws -> String {
    guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", !name.contains("\0") else {
      throw BackupError(.usage, "refusing file name \"\(name)\": it would leave the backup directory")
    }
    return (directory as NSString).appendingPathComponent(name)
  }

  /// Starts a streamed put: a new file, created exclusively and locked (flock) until closed so
  /// that cleanup never removes a file another process is still writing.
  public func create(_ name: String) throws -> LocalFileOutput {
    try LocalFileOutput(path: try path(of: name))
  }

  /// Writes small metadata atomically: temp file, fsync, rename, fsync of the directory.
  public func writeAtomically(_ name: String, _ data: Data) throws {
    let final = try path(of: name)
    let temp = try path(of: ".\(name).tmp-\(getpid())")
    let out = try LocalFileOutput(path: temp)
    do {
      try data.withUnsafeBytes { try out.write($0) }
      try out.close(sync: true)
    } catch {
      out.abandon()
      unlink(temp)
      throw error
    }
    guard rename(temp, final) == 0 else {
      let e = errno
      unlink(temp)
      throw BackupError(.storage, "cannot rename \(temp) to \(final): \(String(cString: strerror(e)))")
    }
    syncDirectory()
  }

  public func syncDirectory() {
    let fd = Glibc.open(directory, O_RDONLY | O_DIRECTORY)
    if fd >= 0 {
      _ = fsync(fd)
      _ = Glibc.close(fd)
    }
  }

  /// Ranged get: an open file to read from at any offset.
  public func openForReading(_ name: String) throws -> LocalFileInput {
    try LocalFileInput(path: try path(of: name))
  }

  /// The size of `name`, or nil if it does not exist.
  public func size(of name: String) throws -> Int64? {
    fileSize(try path(of: name))
  }

  public func exists(_ name: String) -> Bool {
    guard let p = try? path(of: name) else { return false }
    return access(p, F_OK) == 0
  }

  public func readAll(_ name: String) throws -> Data {
    let p = try path(of: name)
    guard let d = FileManager.default.contents(atPath: p) else {
      throw BackupError(.notFound, "cannot read \(p)")
    }
    return d
  }

  /// Every entry name in the directory (no recursion); empty when it does not exist.
  public func list() throws -> [String] {
    guard FileManager.default.fileExists(atPath: directory) else { return [] }
    do {
      return try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    } catch {
      throw BackupError(.storage, "cannot list backup directory \(directory): \(error.localizedDescription)")
    }
  }

  /// Removes `name`; a missing file is not an error.
  public func remove(_ name: String) throws {
    let p = try path(of: name)
    if unlink(p) != 0 && errno != ENOENT {
      throw BackupError(.storage, "cannot delete \(p): \(String(cString: strerror(errno)))")
    }
  }

  /// True when another process holds the write lock of `name` (a create still running).
  public func isLocked(_ name: String) -> Bool {
    guard let p = try? path(of: name) else { return false }
    let fd = Glibc.open(p, O_RDONLY)
    guard fd >= 0 else { return false }
    defer { _ = Glibc.close(fd) }
    if flock(fd, LOCK_EX | LOCK_NB) == 0 {
      _ = flock(fd, LOCK_UN)
      return false
    }
    return errno == EWOULDBLOCK
  }
}

/// The size of the file at `path`, or nil (outside `LocalStore`, whose `stat` method would shadow
/// the C function).
private func fileSize(_ path: String) -> Int64? {
  var st = stat()
  guard stat(path, &st) == 0 else { return nil }
  return Int64(st.st_size)
}

/// A new local file, written sequentially, locked exclusively while open.
public final class LocalFileOutput: ByteOutput {
  public let path: String
  private var fd: Int32
  public private(set) var bytesWritten: Int64 = 0
  /// Where the last writeback request ended (see `flushBehind`).
  private var flushRequested: Int64 = 0
  /// Every this many bytes the kernel is asked to start writing what came before, so the disk
  /// works while the data still streams and the final fsync has little left to wait for (with
  /// 24 GiB of RAM the kernel's own writeback starts only gigabytes later: a 1 GiB download's
  /// fsync took 0.4 s, 7% of its time).
  static let flushBehind: Int64 = 32 << 20

  /// A new file at any path (created exclusively, 0600).
  public static func create(path: String) throws -> LocalFileOutput { try LocalFileOutput(path: path) }

  init(path: String) throws {
    self.path = path
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      let e = errno
      throw BackupError(
        e == EEXIST ? .refused : .storage, "cannot create \(path): \(String(cString: strerror(e)))")
    }
    _ = flock(fd, LOCK_EX | LOCK_NB)
  }

  public func write(_ bytes: UnsafeRawBufferPointer) throws {
    guard var base = bytes.baseAddress else { return }
    var left = bytes.count
    while left > 0 {
      let n = Glibc.write(fd, base, left)
      if n < 0 {
        if errno == EINTR { continue }
        throw LocalFileOutput.ioError("writing", path, errno)
      }
      left -= n
      base += n
      bytesWritten += Int64(n)
    }
    if bytesWritten - flushRequested >= Self.flushBehind {
      // a hint: failures surface at the fsync in close(sync:)
      _ = sync_file_range(
        fd, off_t(flushRequested), off_t(bytesWritten - flushRequested),
        UInt32(AI_SHELL_SYNC_FILE_RANGE_WRITE))
      flushRequested = bytesWritten
    }
  }

  /// Flushes to stable storage (if asked) and closes; the lock goes with the descriptor.
  public func close(sync: Bool) throws {
    guard fd >= 0 else { return }
    defer {
      _ = Glibc.close(fd)
      fd = -1
    }
    if sync && fsync(fd) != 0 { throw LocalFileOutput.ioError("syncing", path, errno) }
  }

  /// Closes without syncing after a failure.
  public func abandon() {
    if fd >= 0 {
      _ = Glibc.close(fd)
      fd = -1
    }
  }

  deinit { abandon() }

  static func ioError(_ verb: String, _ path: String, _ code: Int32) -> BackupError {
    let hint =
      code == ENOSPC
      ? "free space on that file system or choose another backup directory (--backup-dir)" : nil
    return BackupError(.storage, "\(verb) \(path) failed: \(String(cString: strerror(code)))", hint: hint)
  }
}

/// A local file read at arbitrary offsets.
public final class LocalFileInput: RandomAccessInput {
  public let path: String
  private let fd: Int32
  public let size: Int64

  public init(path: String) throws {
    self.path = path
    fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      let e = errno
      throw BackupError(
        e == ENOENT ? .notFound : .storage, "cannot open \(path): \(String(cString: strerror(e)))")
    }
    var st = stat()
    fstat(fd, &st)
    size = Int64(st.st_size)
  }

  /// Reads up to `buffer.count` bytes at `offset`; 0 at the end of the file.
  public func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    while true {
      let n = pread(fd, buffer.baseAddress, buffer.count, off_t(offset))
      if n >= 0 { return n }
      if errno == EINTR { continue }
      throw LocalFileOutput.ioError("reading", path, errno)
    }
  }

  deinit { _ = Glibc.close(fd) }
}

extension LocalFileInput: MappableInput {
  public func map(at offset: Int64, count: Int) throws -> MappedBytes {
    precondition(offset >= 0 && count > 0)
    let page = Int64(sysconf(Int32(_SC_PAGESIZE)))
    let start = offset - offset % page
    let length = Int(offset - start) + count
    // MAP_POPULATE: the pages are mapped in one call instead of one fault each
    guard let base = mmap(nil, length, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, off_t(start)),
      base != MAP_FAILED
    else { throw LocalFileOutput.ioError("mapping", path, errno) }
    return MappedBytes(
      base: base, length: length,
      bytes: UnsafeRawBufferPointer(start: base + Int(offset - start), count: count))
  }
}
