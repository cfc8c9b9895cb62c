import BackupModel

/// Compresses independent members: each call's output is one complete gzip member / bzip2 stream /
/// zstd frame (or the raw bytes for .none), so a file that is a concatenation of members decodes as
/// one stream with `gzip -dc`, `bunzip2 -c`, `zstd -dc`. Instances are NOT thread-safe; make one per thread.
/// Internal contexts are reused between calls.
public protocol MemberCompressor: AnyObject {
  func compressMember(_ raw: UnsafeRawBufferPointer) throws -> [UInt8]
}

/// Decodes a stream of concatenated members incrementally (gzip: inflateReset after each member end
/// and continue; bzip2: new BZ2_bzDecompressInit per stream; zstd: ZSTD_decompressStream continues across
/// frames). Feed any slicing of the stored bytes.
public protocol StreamDecompressor: AnyObject {
  /// Feeds stored bytes; calls `output` zero or more times with decoded bytes (the pointer is only valid
  /// during the call).
  func decompress(_ input: UnsafeRawBufferPointer, output: (UnsafeRawBufferPointer) throws -> Void) throws
  /// Call after the last input: throws BackupError(.corrupt, ...) if the input ended inside a member
  /// (truncated).
  func finish(output: (UnsafeRawBufferPointer) throws -> Void) throws
}

public enum Codecs {
  /// A compressor for `algorithm` at `level`; throws `BackupError(.usage, ...)` for a level outside
  /// `levelRange(algorithm)`.
  public static func compressor(_ algorithm: CompressionAlgorithm, level: Int) throws -> MemberCompressor {
    let range = levelRange(algorithm)
    guard range.contains(level) else {
      throw BackupError(
        .usage, "invalid \(algorithm.rawValue) compression level \(level)",
        hint: "use a level in \(range.lowerBound)...\(range.upperBound)")
    }
    switch algorithm {
    case .gzip: return try GzipCompressor(level: level)
    case .bzip2: return BZip2Compressor(level: level)
    case .zstd: return try ZstdCompressor(level: level)
    case .none: return PassThroughCompressor()
    }
  }

  /// A decompressor for a concatenation of members made by `compressor(algorithm, level:)` or the CLI tools.
  public static func decompressor(_ algorithm: CompressionAlgorithm) throws -> StreamDecompressor {
    switch algorithm {
    case .gzip: return try GzipDecompressor()
    case .bzip2: return BZip2Decompressor()
    case .zstd: return try ZstdDecompressor()
    case .none: return PassThroughDecompressor()
    }
  }

  /// Valid level range per algorithm.
  public static func levelRange(_ algorithm: CompressionAlgorithm) -> ClosedRange<Int> {
    switch algorithm {
    case .gzip: return 1...9
    case .bzip2: return 1...9
    case .zstd: return 1...19
    case .none: return 0...0
    }
  }
}

/// The size of the reusable output buffer of the decompressors.
let decodeBufferSize = 256 * 1024

/// The largest input handed to a C call with a 32-bit length at once.
let maxChunk = 1 << 30

/// A growable raw scratch buffer reused between calls (compressor output before copying into an array).
final class ScratchBuffer {
  private(set) var pointer: UnsafeMutableRawPointer
  private(set) var capacity: Int

  init(capacity: Int) {
    self.capacity = max(capacity, 64)
    pointer = UnsafeMutableRawPointer.allocate(byteCount: self.capacity, alignment: 16)
  }

  /// Makes room for at least `needed` bytes; when `preserving` > 0, the first that many bytes are kept.
  func reserve(_ needed: Int, preserving: Int = 0) {
    guard needed > capacity else { return }
    let newCapacity = max(needed, capacity + capacity / 2)
    let newPointer = UnsafeMutableRawPointer.allocate(byteCount: newCapacity, alignment: 16)
    if preserving > 0 { newPointer.copyMemory(from: pointer, byteCount: preserving) }
    pointer.deallocate()
    pointer = newPointer
    capacity = newCapacity
  }

  func bytes(count: Int) -> [UInt8] {
    [UInt8](UnsafeRawBufferPointer(start: pointer, count: count))
  }

  deinit { pointer.deallocate() }
}

final class PassThroughCompressor: MemberCompressor {
  func compressMember(_ raw: UnsafeRawBufferPointer) throws -> [UInt8] { [UInt8](raw) }
}

final class PassThroughDecompressor: StreamDecompressor {
  func decompress(_ input: UnsafeRawBufferPointer, output: (UnsafeRawBufferPointer) throws -> Void) throws {
    if !input.isEmpty { try output(input) }
  }

  func finish(output: (UnsafeRawBufferPointer) throws -> Void) throws {}
}
