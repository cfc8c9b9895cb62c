import BackupEngines
import BackupModel
import Foundation

/// A `PartSink` that keeps every part in memory (tests only).
public final class MemorySink: PartSink {
  public struct Part: Equatable {
    public var kind: PartKind
    public var table: String?
    public var bytes: [UInt8]
    public var rows: Int64?
    public var contentChecksum: String?
    public var text: String { String(decoding: bytes, as: UTF8.self) }
  }

  public private(set) var parts: [Part] = []
  private var open = false

  public init() {}

  public func beginPart(kind: PartKind, table: String?) throws {
    precondition(!open, "beginPart while a part is open")
    parts.append(Part(kind: kind, table: table, bytes: []))
    open = true
  }

  public func write(_ bytes: UnsafeRawBufferPointer) throws {
    precondition(open, "write outside a part")
    parts[parts.count - 1].bytes.append(contentsOf: bytes)
  }

  public func endPart(rows: Int64?, contentChecksum: String?) throws {
    precondition(open, "endPart without beginPart")
    parts[parts.count - 1].rows = rows
    parts[parts.count - 1].contentChecksum = contentChecksum
    open = false
  }

  /// Every part's bytes concatenated: the raw backup file.
  public var allBytes: [UInt8] { parts.flatMap(\.bytes) }
}

/// A `ByteSource` over bytes in memory, handing them out in small reads to exercise buffering.
public final class MemorySource: ByteSource {
  private let bytes: [UInt8]
  private var offset = 0
  private let chunk: Int

  public init(_ bytes: [UInt8], chunk: Int = 7_919) {
    self.bytes = bytes
    self.chunk = chunk
  }

  public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    let n = min(buffer.count, chunk, bytes.count - offset)
    guard n > 0 else { return 0 }
    bytes.withUnsafeBytes { src in
      buffer.baseAddress!.copyMemory(from: src.baseAddress! + offset, byteCount: n)
    }
    offset += n
    return n
  }
}

/// Temporary directories removed at deinit.
public final class TempDir {
  public let url: URL
  public var path: String { url.path }

  public init(_ label: String = "ai-shell-test") {
    url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
  }

  public func file(_ name: String) -> String { url.appendingPathComponent(name).path }

  deinit { try? FileManager.default.removeItem(at: url) }
}

/// Hands the parts of a `MemorySink` back to a restore (tests only).
public final class MemoryParts: PartOpener {
  public let parts: [[UInt8]]
  /// When set, the source for part `failPart` throws `.corrupt` after `failAfter` bytes.
  public var failPart: Int?
  public var failAfter = 0

  public init(_ parts: [[UInt8]]) { self.parts = parts }

  public func open(_ index: Int) throws -> ByteSource {
    if index == failPart { return FailingSource(parts[index], after: failAfter) }
    return MemorySource(parts[index])
  }
}

/// Hands out the first `after` bytes, then throws as a part with a bad SHA-256 does.
public final class FailingSource: ByteSource {
  let inner: MemorySource

  public init(_ bytes: [UInt8], after: Int) {
    inner = MemorySource(Array(bytes.prefix(after)), chunk: 101)
  }

  public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    let n = try inner.read(into: buffer)
    if n == 0 { throw BackupError(.corrupt, "part sha256 mismatch (test)") }
    return n
  }
}
