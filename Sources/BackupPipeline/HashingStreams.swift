import BackupModel
import Foundation

/// Passes writes through to `output` and computes the SHA-256 of everything written on a
/// background lane: the hash of the stored file, whatever layers (compression, encryption)
/// are stacked above it.
public final class HashingOutput: ByteOutput {
  private let output: ByteOutput
  private let lane = HashLane(label: "ai-shell.hash.file")
  private let digest = DigestBox()
  public private(set) var bytesWritten: Int64 = 0

  public init(_ output: ByteOutput) { self.output = output }

  public func write(_ bytes: UnsafeRawBufferPointer) throws { try write(array: [UInt8](bytes)) }

  public func write(array: [UInt8]) throws {
    try array.withUnsafeBytes { try output.write($0) }
    bytesWritten += Int64(array.count)
    lane.update(digest, with: array)
  }

  /// The SHA-256 of every byte written so far (waits for the lane).
  public func finalizeHex() -> String {
    lane.wait()
    return digest.finalizeHex()
  }
}

/// Counts the bytes read from a stored file (how much of it a ranged restore touched).
public final class CountingInput: RandomAccessInput {
  private let input: RandomAccessInput
  public private(set) var bytesRead: Int64 = 0
  public var size: Int64 { input.size }

  public init(_ input: RandomAccessInput) { self.input = input }

  public func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    let n = try input.read(at: offset, into: buffer)
    bytesRead += Int64(n)
    return n
  }
}
