import Foundation

/// Receives the raw (uncompressed) bytes of a backup as the engine produces them, part by part.
/// The pipeline implements it: it cuts members, compresses, hashes and writes.
public protocol PartSink: AnyObject {
  /// Starts a part. `table` names the table for `.table` parts.
  func beginPart(kind: PartKind, table: String?) throws
  /// Appends bytes to the current part.
  func write(_ bytes: UnsafeRawBufferPointer) throws
  /// Appends a whole array; a sink that keeps the bytes (a parallel dump's hand-over to the
  /// writer thread) takes the array instead of copying it.
  func write(array: [UInt8]) throws
  /// Ends the current part. `rows` and `contentChecksum` are set for table parts.
  func endPart(rows: Int64?, contentChecksum: String?) throws
  /// How many bytes of the source the engine has read so far (for progress; optional).
  func reportSourceProgress(_ bytesRead: Int64)
}

extension PartSink {
  public func reportSourceProgress(_ bytesRead: Int64) {}
  public func write(array: [UInt8]) throws { try array.withUnsafeBytes { try write($0) } }
}

/// A pull stream of raw bytes (one part of a backup, already decoded and checked).
public protocol ByteSource: AnyObject {
  /// Fills up to `buffer.count` bytes and returns how many; 0 means the end of the stream.
  func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// A byte appender that hands its contents to a `PartSink` in large slices, so engines can
/// format row by row without a call per value.
public final class OutputBuffer {
  /// The bytes not yet handed to the sink; encoders may append to it directly.
  public var bytes: [UInt8]
  private let sink: PartSink
  private let flushThreshold: Int
  /// Called after each flush (engines report their read progress here).
  public var afterFlush: (() -> Void)?

  public init(sink: PartSink, flushThreshold: Int = 256 * 1024) {
    self.sink = sink
    self.flushThreshold = flushThreshold
    self.bytes = []
    bytes.reserveCapacity(flushThreshold + 64 * 1024)
  }

  @inline(__always) public func append(_ byte: UInt8) { bytes.append(byte) }

  @inline(__always) public func append(_ string: StaticString) {
    string.withUTF8Buffer { bytes.append(contentsOf: $0) }
  }

  @inline(__always) public func append(_ string: String) {
    var copy = string
    copy.withUTF8 { bytes.append(contentsOf: $0) }
  }

  @inline(__always) public func append(_ raw: UnsafeRawBufferPointer) {
    bytes.append(contentsOf: raw)
  }

  @inline(__always) public func append(contentsOf other: [UInt8]) { bytes.append(contentsOf: other) }

  /// Appends the decimal form of an integer without allocating.
  public func append(decimal value: Int64) {
    if value == 0 {
      bytes.append(UInt8(ascii: "0"))
      return
    }
    var magnitude = value.magnitude
    if value < 0 { bytes.append(UInt8(ascii: "-")) }
    withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { tmp in
      var i = 20
      while magnitude > 0 {
        i -= 1
        tmp[i] = UInt8(ascii: "0") &+ UInt8(magnitude % 10)
        magnitude /= 10
      }
      bytes.append(contentsOf: UnsafeBufferPointer(rebasing: tmp[i..<20]))
    }
  }

  /// Hands the buffered bytes to the sink when the threshold is reached.
  @inline(__always) public func flushIfNeeded() throws {
    if bytes.count >= flushThreshold { try flush() }
  }

  /// A batch an engine fills in a local array and hands over with `flush(batch:)` once it holds
  /// `batchThreshold` bytes: per-row appends to a local array need no dynamic exclusivity checks,
  /// which on this class's `bytes` were ~10% of a PostgreSQL dump's CPU (one check per row).
  public var batchThreshold: Int { flushThreshold }

  public func makeBatch() -> [UInt8] {
    var batch: [UInt8] = []
    batch.reserveCapacity(flushThreshold + 64 * 1024)
    return batch
  }

  /// Hands the buffered bytes, then `batch`, to the sink (the array itself: a sink may keep it),
  /// and empties `batch`.
  public func flush(batch: inout [UInt8]) throws {
    try flush()
    guard !batch.isEmpty else { return }
    try sink.write(array: batch)
    batch.removeAll(keepingCapacity: true)
    afterFlush?()
  }

  /// Hands every buffered byte to the sink.
  public func flush() throws {
    guard !bytes.isEmpty else { return }
    try sink.write(array: bytes)
    // a sink that kept the array leaves it shared: this gives the buffer fresh storage
    bytes.removeAll(keepingCapacity: true)
    afterFlush?()
  }
}

/// A buffered reader over a `ByteSource` with the primitives the restore parsers need.
public final class InputReader {
  private let source: ByteSource
  private var buffer: [UInt8]
  private var start = 0
  private var end = 0
  private var eof = false

  public init(_ source: ByteSource, bufferSize: Int = 256 * 1024) {
    self.source = source
    self.buffer = [UInt8](repeating: 0, count: bufferSize)
  }

  /// Refills so that at least one unread byte is buffered; false at the end of the stream.
  private func fill() throws -> Bool {
    if start < end { return true }
    if eof { return false }
    start = 0
    end = 0
    let n = try buffer.withUnsafeMutableBytes { try source.read(into: $0) }
    if n == 0 {
      eof = true
      return false
    }
    end = n
    return true
  }

  /// Reads one line including its terminating "\n" (the last line may have none) into `line`,
  /// replacing its contents. Returns false at the end of the stream.
  public func readLine(into line: inout [UInt8]) throws -> Bool {
    line.removeAll(keepingCapacity: true)
    while try fill() {
      if let nl = newline(from: start) {
        line.append(contentsOf: buffer[start...nl])
        start = nl + 1
        return true
      }
      line.append(contentsOf: buffer[start..<end])
      start = end
    }
    return !line.isEmpty
  }

  /// The index of the first "\n" in the buffered bytes at or after `from`, if any.
  private func newline(from: Int) -> Int? {
    guard from < end else { return nil }
    return buffer.withUnsafeBytes { buf -> Int? in
      guard let p = memchr(buf.baseAddress! + from, 0x0A, end - from) else { return nil }
      return buf.baseAddress!.distance(to: UnsafeRawPointer(p))
    }
  }

  /// Appends whole lines (each with its "\n") to `out` until `out` holds at least `limit` bytes,
  /// the line `terminator` is read (consumed, not appended; with or without its "\n") or the
  /// stream ends. Returns true when it stopped at the terminator. Must be called at the start of
  /// a line. Many lines are appended per copy, so this is the fast path for row data.
  public func appendLines(upTo limit: Int, to out: inout [UInt8], until terminator: [UInt8]) throws -> Bool {
    let bare = terminator.last == 0x0A ? Array(terminator.dropLast()) : terminator
    var line: [UInt8] = []
    while out.count < limit {
      guard try fill() else { return false }
      var runEnd = start
      var stopped = false
      while let nl = newline(from: runEnd) {
        let length = nl + 1 - runEnd
        if length == terminator.count && buffer[runEnd...nl].elementsEqual(terminator) {
          stopped = true
          break
        }
        runEnd = nl + 1
        if out.count + (runEnd - start) >= limit { break }
      }
      out.append(contentsOf: buffer[start..<runEnd])
      if stopped {
        start = runEnd + terminator.count
        return true
      }
      start = runEnd
      if out.count >= limit { return false }
      // a line that runs past the buffered bytes (or the last line, without "\n")
      guard try readLine(into: &line) else { return false }
      if line == terminator || line == bare { return true }
      out.append(contentsOf: line)
    }
    return false
  }

  /// Reads exactly `count` bytes, or throws a corrupt-backup error if the stream ends first.
  public func readExactly(_ count: Int) throws -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(count)
    while out.count < count {
      guard try fill() else {
        throw BackupError(.corrupt, "backup part ended early (wanted \(count) bytes, got \(out.count))")
      }
      let take = min(count - out.count, end - start)
      out.append(contentsOf: buffer[start..<start + take])
      start += take
    }
    return out
  }

  /// Reads up to `count` bytes into `out` (appending); returns how many were read (0 at the end).
  public func read(upTo count: Int, appendingTo out: inout [UInt8]) throws -> Int {
    guard try fill() else { return 0 }
    let take = min(count, end - start)
    out.append(contentsOf: buffer[start..<start + take])
    start += take
    return take
  }

  /// Skips exactly `count` bytes or throws if the stream ends first.
  public func skip(_ count: Int) throws {
    var left = count
    while left > 0 {
      guard try fill() else { throw BackupError(.corrupt, "backup part ended early while skipping") }
      let take = min(left, end - start)
      start += take
      left -= take
    }
  }

  /// True when every byte has been read.
  public func atEnd() throws -> Bool { try !fill() }
}

/// Anything a backup file can be streamed into (a local file, later an upload).
public protocol ByteOutput: AnyObject {
  func write(_ bytes: UnsafeRawBufferPointer) throws
  /// Writes a whole array; an output that keeps the bytes after returning (a hashing lane)
  /// shares the array instead of copying it.
  func write(array: [UInt8]) throws
}

extension ByteOutput {
  public func write(array: [UInt8]) throws { try array.withUnsafeBytes { try write($0) } }
}

/// A stored backup file read at arbitrary offsets (a local file, later a ranged GET).
public protocol RandomAccessInput: AnyObject {
  var size: Int64 { get }
  /// Reads up to `buffer.count` bytes at `offset`; 0 at the end.
  func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int
  /// Lends up to `limit` bytes at `offset` (at least one, unless at the end) from the input's own
  /// buffer, valid until the next call on the input; nil when the input has no buffer to lend
  /// (then `read` copies). S3's download windows lend theirs: a copy less per byte.
  func borrow(at offset: Int64, limit: Int) throws -> UnsafeRawBufferPointer?
}

extension RandomAccessInput {
  public func borrow(at offset: Int64, limit: Int) throws -> UnsafeRawBufferPointer? { nil }
}

/// An input whose bytes can be mapped into memory instead of copied out (a local file: its
/// pages in the page cache become the caller's view without a copy).
public protocol MappableInput: RandomAccessInput {
  /// Maps the `count` bytes at `offset` read-only; every one of them must exist in the file (a
  /// page past the end would fault when touched).
  func map(at offset: Int64, count: Int) throws -> MappedBytes
}

/// A read-only mapping of part of a file, unmapped when released.
public final class MappedBytes {
  public let bytes: UnsafeRawBufferPointer
  private let base: UnsafeMutableRawPointer
  private let length: Int

  /// Takes over a mapping of `length` bytes at `base` whose wanted bytes are `bytes`.
  public init(base: UnsafeMutableRawPointer, length: Int, bytes: UnsafeRawBufferPointer) {
    self.base = base
    self.length = length
    self.bytes = bytes
  }

  deinit { munmap(base, length) }
}
