import BackupModel
import Foundation

/// One stored object as a listing shows it.
public struct BlobInfo: Sendable, Equatable {
  /// The name relative to the store (no prefix).
  public var name: String
  public var size: Int64
  public init(name: String, size: Int64) {
    self.name = name
    self.size = size
  }
}

/// A streamed put in progress: bytes go in with `write`, the object exists once `finish`
/// returns, and `abort` leaves nothing behind (no partial object, no orphaned upload parts).
public protocol BlobUpload: ByteOutput {
  func finish() throws
  /// Abandons the upload; safe to call after a failure or twice. False when something may be
  /// left behind (the backend could not be reached to remove it): `cleanup` must see to it.
  @discardableResult func abort() -> Bool
  /// Bytes the backend has confirmed stored so far (S3: the parts it has acknowledged), for
  /// progress; readable from any thread.
  var confirmedBytes: Int64 { get }
}

/// The storage shape every backend shares (restic's backend interface is the model): streamed
/// put, ranged get, stat, list by prefix and delete. Names are single path components such as
/// `backup-20261128T061352Z-3f9a.sql.zst`; a backend maps them to its own keys.
public protocol BlobStore: AnyObject {
  /// Where the objects live, for messages (a directory, `s3://bucket/prefix`).
  var location: String { get }
  /// Starts a streamed put of `name`.
  func put(_ name: String) throws -> BlobUpload
  /// Stores small metadata whole and atomically (readers see the old object or the new one).
  func put(_ name: String, data: Data) throws
  /// Opens `name` for ranged reads; `.notFound` when it does not exist.
  func open(_ name: String) throws -> RandomAccessInput
  /// The size of `name`, or nil when it does not exist.
  func stat(_ name: String) throws -> Int64?
  /// Every object whose name starts with `prefix`, sorted by name.
  func list(prefix: String) throws -> [BlobInfo]
  /// Removes `name`; a missing object is not an error.
  func delete(_ name: String) throws
}

extension BlobStore {
  /// The whole object (for manifests and other small metadata).
  public func read(_ name: String) throws -> Data {
    let input = try open(name)
    var data = Data(count: Int(input.size))
    var done = 0
    try data.withUnsafeMutableBytes { buf in
      while done < buf.count {
        let n = try input.read(
          at: Int64(done), into: UnsafeMutableRawBufferPointer(rebasing: buf[done..<buf.count]))
        guard n > 0 else {
          throw BackupError(.corrupt, "\(location)/\(name) ended after \(done) of \(buf.count) bytes")
        }
        done += n
      }
    }
    return data
  }
}

// MARK: the local directory as a blob store

extension LocalStore: BlobStore {
  public var location: String { directory }

  public func put(_ name: String) throws -> BlobUpload {
    try ensureDirectory()
    return LocalUpload(store: self, name: name, output: try create(name))
  }

  public func put(_ name: String, data: Data) throws {
    try ensureDirectory()
    try writeAtomically(name, data)
  }

  public func open(_ name: String) throws -> RandomAccessInput { try openForReading(name) }

  public func stat(_ name: String) throws -> Int64? { try size(of: name) }

  public func list(prefix: String) throws -> [BlobInfo] {
    try list().filter { $0.hasPrefix(prefix) && !$0.hasPrefix(".") }.compactMap { name in
      var isDir: ObjCBool = false
      let p = try path(of: name)
      guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue else {
        return nil
      }
      return BlobInfo(name: name, size: try size(of: name) ?? 0)
    }
  }

  public func delete(_ name: String) throws { try remove(name) }
}

/// A local streamed put: the file itself, synced on finish, removed on abort.
final class LocalUpload: BlobUpload {
  let store: LocalStore
  let name: String
  let output: LocalFileOutput
  private var done = false
  private let written = Counter()
  var confirmedBytes: Int64 { written.value }

  init(store: LocalStore, name: String, output: LocalFileOutput) {
    self.store = store
    self.name = name
    self.output = output
  }

  func write(_ bytes: UnsafeRawBufferPointer) throws {
    try output.write(bytes)
    written.add(Int64(bytes.count))
  }

  func finish() throws {
    try output.close(sync: true)
    store.syncDirectory()
    done = true
  }

  @discardableResult func abort() -> Bool {
    guard !done else { return true }
    done = true
    output.abandon()
    return (try? store.remove(name)) != nil
  }
}

/// A byte count shared between threads.
public final class Counter: @unchecked Sendable {
  private let lock = NSLock()
  private var count: Int64 = 0
  public init() {}
  public var value: Int64 {
    lock.lock()
    defer { lock.unlock() }
    return count
  }
  public func add(_ n: Int64) {
    lock.lock()
    count += n
    lock.unlock()
  }
}

/// Writes every byte to several outputs in turn (a local file and an upload).
public final class TeeOutput: ByteOutput {
  private let outputs: [ByteOutput]
  public init(_ outputs: [ByteOutput]) { self.outputs = outputs }
  public func write(_ bytes: UnsafeRawBufferPointer) throws {
    for o in outputs { try o.write(bytes) }
  }
}

/// One streamed put that was started and neither finished nor aborted.
public struct UnfinishedUpload: Sendable {
  /// The store-relative name it would have created.
  public var name: String
  public var started: Date?
  /// The backend's handle for it (an S3 UploadId).
  public var handle: String
  public init(name: String, started: Date?, handle: String) {
    self.name = name
    self.started = started
    self.handle = handle
  }
}

/// Backends whose streamed puts can outlive a killed process (S3 multipart uploads keep their
/// parts, and their cost, until completed or aborted).
public protocol UnfinishedUploads: AnyObject {
  /// Uploads directly under the store's prefix neither completed nor aborted.
  func unfinishedUploads() throws -> [UnfinishedUpload]
  /// Aborts one, so that none of its parts remain.
  func abortUpload(_ upload: UnfinishedUpload) throws
}

/// The backend under any wrappers.
public func innermostStore(_ store: BlobStore) -> BlobStore {
  if let r = store as? RetryingStore { return innermostStore(r.base) }
  if let l = store as? RateLimitedStore { return innermostStore(l.base) }
  return store
}
