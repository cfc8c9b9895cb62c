import BackupModel
import Foundation

/// A failure worth retrying (a 5xx answer, 503 SlowDown, a reset connection). Backends throw it
/// around the error a user should see once the retries are spent.
public struct TransientStorageError: Error, CustomStringConvertible {
  public var underlying: BackupError
  public init(_ underlying: BackupError) { self.underlying = underlying }
  public var description: String { underlying.description }
}

/// Exponential backoff with full jitter: attempt n waits a random time up to
/// min(maxDelay, baseDelay * 2^(n-1)). Only `TransientStorageError`s are retried; when the
/// attempts are spent (or the error is not transient) the user-facing error is thrown.
public struct RetryPolicy: Sendable {
  public var attempts: Int
  public var baseDelay: Double
  public var maxDelay: Double
  /// Called before each retry with the attempt that failed and the error (for logging).
  public var onRetry: (@Sendable (Int, Error) -> Void)?

  public init(
    attempts: Int = 6, baseDelay: Double = 0.25, maxDelay: Double = 8,
    onRetry: (@Sendable (Int, Error) -> Void)? = nil
  ) {
    self.attempts = max(1, attempts)
    self.baseDelay = baseDelay
    self.maxDelay = maxDelay
    self.onRetry = onRetry
  }

  public static let none = RetryPolicy(attempts: 1)
  /// For tidying up after a failure: one retry, since the store may be gone (a dead server),
  /// and what stays is found later by `cleanup`.
  public static let brief = RetryPolicy(attempts: 2, baseDelay: 0.25, maxDelay: 1)

  public func delay(beforeRetry attempt: Int) -> Double {
    let cap = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
    return Double.random(in: cap / 2...cap)
  }

  public func run<T>(_ body: () throws -> T) throws -> T {
    var attempt = 1
    while true {
      do {
        return try body()
      } catch let e as TransientStorageError {
        guard attempt < attempts else { throw e.underlying }
        onRetry?(attempt, e)
        Thread.sleep(forTimeInterval: delay(beforeRetry: attempt))
        attempt += 1
      }
    }
  }
}

/// Retries every call of another store (stat, list, delete, small puts, each ranged read). A
/// streamed put cannot be replayed from here: backends retry its pieces themselves (S3 retries
/// each multipart part alone).
public final class RetryingStore: BlobStore {
  public let base: BlobStore
  public let policy: RetryPolicy

  public init(_ base: BlobStore, policy: RetryPolicy = RetryPolicy()) {
    self.base = base
    self.policy = policy
  }

  public var location: String { base.location }
  public func put(_ name: String) throws -> BlobUpload { try policy.run { try base.put(name) } }
  public func put(_ name: String, data: Data) throws { try policy.run { try base.put(name, data: data) } }
  public func open(_ name: String) throws -> RandomAccessInput {
    RetryingInput(try policy.run { try base.open(name) }, policy: policy)
  }
  public func stat(_ name: String) throws -> Int64? { try policy.run { try base.stat(name) } }
  public func list(prefix: String) throws -> [BlobInfo] { try policy.run { try base.list(prefix: prefix) } }
  public func delete(_ name: String) throws { try policy.run { try base.delete(name) } }
}

final class RetryingInput: RandomAccessInput {
  let input: RandomAccessInput
  let policy: RetryPolicy
  init(_ input: RandomAccessInput, policy: RetryPolicy) {
    self.input = input
    self.policy = policy
  }
  var size: Int64 { input.size }
  func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    try policy.run { try input.read(at: offset, into: buffer) }
  }
  func borrow(at offset: Int64, limit: Int) throws -> UnsafeRawBufferPointer? {
    try policy.run { try input.borrow(at: offset, limit: limit) }
  }
}

/// A token bucket shared by every transfer of one store: at most `bytesPerSecond` on average,
/// with bursts of up to a quarter second's worth.
public final class RateLimiter: @unchecked Sendable {
  public let bytesPerSecond: Double
  private let lock = NSLock()
  private var available: Double
  private var last = Date()

  public init(bytesPerSecond: Int64) {
    self.bytesPerSecond = Double(max(1, bytesPerSecond))
    available = 0
  }

  /// Waits until `count` bytes may pass.
  public func take(_ count: Int) {
    lock.lock()
    let now = Date()
    available = min(available + now.timeIntervalSince(last) * bytesPerSecond, bytesPerSecond / 4)
    last = now
    available -= Double(count)
    let wait = available < 0 ? -available / bytesPerSecond : 0
    lock.unlock()
    if wait > 0 { Thread.sleep(forTimeInterval: wait) }
  }
}

/// `--limit-rate`: every byte written to a put or read from an object passes the limiter.
public final class RateLimitedStore: BlobStore {
  public let base: BlobStore
  public let limiter: RateLimiter

  public init(_ base: BlobStore, bytesPerSecond: Int64) {
    self.base = base
    limiter = RateLimiter(bytesPerSecond: bytesPerSecond)
  }

  public var location: String { base.location }
  public func put(_ name: String) throws -> BlobUpload { LimitedUpload(try base.put(name), limiter) }
  public func put(_ name: String, data: Data) throws {
    limiter.take(data.count)
    try base.put(name, data: data)
  }
  public func open(_ name: String) throws -> RandomAccessInput { LimitedInput(try base.open(name), limiter) }
  public func stat(_ name: String) throws -> Int64? { try base.stat(name) }
  public func list(prefix: String) throws -> [BlobInfo] { try base.list(prefix: prefix) }
  public func delete(_ name: String) throws { try base.delete(name) }
}

final class LimitedUpload: BlobUpload {
  let upload: BlobUpload
  let limiter: RateLimiter
  init(_ upload: BlobUpload, _ limiter: RateLimiter) {
    self.upload = upload
    self.limiter = limiter
  }
  func write(_ bytes: UnsafeRawBufferPointer) throws {
    limiter.take(bytes.count)
    try upload.write(bytes)
  }
  func finish() throws { try upload.finish() }
  @discardableResult func abort() -> Bool { upload.abort() }
  var confirmedBytes: Int64 { upload.confirmedBytes }
}

final class LimitedInput: RandomAccessInput {
  let input: RandomAccessInput
  let limiter: RateLimiter
  init(_ input: RandomAccessInput, _ limiter: RateLimiter) {
    self.input = input
    self.limiter = limiter
  }
  var size: Int64 { input.size }
  func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    let n = try input.read(at: offset, into: buffer)
    limiter.take(n)
    return n
  }
  func borrow(at offset: Int64, limit: Int) throws -> UnsafeRawBufferPointer? {
    let bytes = try input.borrow(at: offset, limit: limit)
    limiter.take(bytes?.count ?? 0)
    return bytes
  }
}
