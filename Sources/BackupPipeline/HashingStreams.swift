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

/// One SHA-256 pass over a payload (fed by a `HashLane`) that records the hash state at the
/// checkpoints docs/FORMAT.md describes: at both 64-byte block edges around every part boundary
/// (`markBoundary`, called when the stream stands at one) and every `interval` bytes.
final class CheckpointRecorder: HashSink, @unchecked Sendable {
  private var digest = SHA256Digest()
  private(set) var checkpoints: [Manifest.Checkpoint] = []
  /// Block ends still to record (after boundaries inside a block), ascending.
  private var pending: [Int64] = []
  private let interval: Int64
  private var nextInterval: Int64

  init(interval: Int64 = 64 << 20) {
    precondition(interval > 0 && interval % 64 == 0)
    self.interval = interval
    nextInterval = interval
  }

  /// A part boundary at the current position: the state before its block now, the one after it
  /// when the block is complete.
  func markBoundary() {
    let (offset, state) = digest.blockState()
    record(offset, state)
    if digest.position % 64 != 0, pending.last.map({ $0 < offset + 64 }) ?? true {
      pending.append(offset + 64)
    }
  }

  private func record(_ offset: Int64, _ state: String) {
    guard offset > (checkpoints.last?.offset ?? 0) else { return }
    checkpoints.append(Manifest.Checkpoint(offset: offset, state: state))
  }

  func consume(_ bytes: UnsafeRawBufferPointer) {
    var rest = bytes
    while !rest.isEmpty {
      let target = min(pending.first ?? .max, nextInterval)
      let room = target - digest.position
      guard room <= Int64(rest.count) else {
        digest.update(rest)
        return
      }
      digest.update(UnsafeRawBufferPointer(rebasing: rest[0..<Int(room)]))
      rest = UnsafeRawBufferPointer(rebasing: rest[Int(room)...])
      record(target, digest.blockState().state)
      if pending.first == target { pending.removeFirst() }
      if nextInterval == target { nextInterval += interval }
    }
  }

  func finalizeHex() -> String { digest.finalizeHex() }
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
