import BackupModel
import Foundation

/// The read half of the pipeline: the decoded bytes of one part of a stored backup file. It
/// reads only the part's byte range (with the payload's SHA-256 checkpoints: from the checkpoint
/// at or before it to the one at or after it, at most 63 bytes more on each side), decodes it,
/// and checks the part's size and SHA-256 (against every checkpoint it passes and at its end; in
/// older manifests the part's own digest of its stored bytes, or of its decoded bytes), throwing
/// `.corrupt` on any mismatch.
public final class PartReader: ByteSource {
  private let input: RandomAccessInput
  private let part: Manifest.Part
  private let label: String
  private let decompressor: StreamDecompressor?
  private var nextOffset: Int64
  private let endOffset: Int64
  private var chunk: [UInt8]
  private var pending: [UInt8] = []
  private var pendingStart = 0
  private var digest = SHA256Digest()
  /// The manifest's SHA-256 covers the stored bytes (else, in older manifests, the decoded ones).
  private let hashesStored: Bool
  /// False: the stored bytes were already proven (the whole file's SHA-256, `PayloadChainCheck`),
  /// so the part is only decoded and its size checked.
  private let checksHash: Bool
  /// Format version 4: the payload's checkpoints; the hash runs from a checkpoint at or before
  /// the part (where `digest` starts) to `hashEnd`.
  private let chain: PayloadChain?
  private var checkpointsAhead: ArraySlice<Manifest.Checkpoint> = []
  private var hashEnd: (offset: Int64, state: String?) = (0, nil)
  private var rawSeen: Int64 = 0
  private var finished = false
  /// Called with the number of stored bytes read after each chunk.
  public var onStoredBytes: ((Int) -> Void)?

  /// `chain` is the manifest's `payloadChain` (nil before format version 4: the part's own
  /// digest is checked). With `checksHash` false the part is decoded and its size checked, not
  /// its SHA-256: only for bytes already proven by the whole file's.
  public init(
    input: RandomAccessInput, part: Manifest.Part, chain: PayloadChain?, algorithm: CompressionAlgorithm,
    label: String, chunkSize: Int = 256 * 1024, checksHash: Bool = true
  ) throws {
    self.input = input
    self.part = part
    self.label = label
    self.checksHash = checksHash
    self.chain = checksHash ? chain : nil
    decompressor = algorithm == .none ? nil : try Codecs.decompressor(algorithm)
    hashesStored = checksHash && (chain != nil || part.storedSha256 != nil)
    nextOffset = part.storedOffset
    endOffset = part.storedOffset + part.storedLength
    chunk = [UInt8](repeating: 0, count: chunkSize)
    if checksHash, let chain {
      let start = chain.start(before: part.storedOffset)
      if let state = start.state {
        guard let resumed = SHA256Digest(resumingAt: start.offset, midstate: state) else {
          throw BackupError(
            .corrupt, "\(label): the manifest's SHA-256 checkpoint at \(start.offset) is malformed")
        }
        digest = resumed
      }
      hashEnd = chain.end(after: endOffset)
      checkpointsAhead = chain.between(start.offset, hashEnd.offset)
    }
  }

  public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    while pendingStart >= pending.count {
      pending.removeAll(keepingCapacity: true)
      pendingStart = 0
      if finished { return 0 }
      try refill()
    }
    let n = min(buffer.count, pending.count - pendingStart)
    pending.withUnsafeBytes { src in
      buffer.baseAddress!.copyMemory(from: src.baseAddress! + pendingStart, byteCount: n)
    }
    pendingStart += n
    return n
  }

  private func refill() throws {
    if chain != nil && digest.position < part.storedOffset {
      try hashOnly(upTo: part.storedOffset)  // the checkpoint's block before the part
    }
    if nextOffset >= endOffset {
      try decompressor?.finish { try accept($0) }
      if chain != nil { try hashOnly(upTo: hashEnd.offset) }  // to the block end after it
      try checkEnd()
      finished = true
      return
    }
    let want = Int(min(Int64(chunk.count), endOffset - nextOffset))
    let got = try chunk.withUnsafeMutableBytes { buf in
      try input.read(at: nextOffset, into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<want]))
    }
    guard got > 0 else {
      throw BackupError(.corrupt, "\(label): the backup file is shorter than its manifest says (truncated)")
    }
    nextOffset += Int64(got)
    onStoredBytes?(got)
    try chunk.withUnsafeBytes { buf in
      let slice = UnsafeRawBufferPointer(rebasing: buf[0..<got])
      if hashesStored { try hash(slice) }
      if let decompressor {
        do {
          try decompressor.decompress(slice) { try accept($0) }
        } catch let e as BackupError {
          throw BackupError(.corrupt, "\(label): \(e.message)", hint: "the backup file is damaged")
        }
      } else {
        try accept(slice)
      }
    }
  }

  /// Hashes stored bytes (the next ones of the hashed range), checking every checkpoint passed.
  private func hash(_ bytes: UnsafeRawBufferPointer) throws {
    var rest = bytes
    while let next = checkpointsAhead.first, next.offset - digest.position <= Int64(rest.count) {
      let k = Int(next.offset - digest.position)
      digest.update(UnsafeRawBufferPointer(rebasing: rest[0..<k]))
      rest = UnsafeRawBufferPointer(rebasing: rest[k...])
      guard digest.midstateHex() == next.state else { throw mismatch() }
      checkpointsAhead.removeFirst()
    }
    digest.update(rest)
  }

  /// Reads and hashes (without decoding) the payload's bytes up to `offset`.
  private func hashOnly(upTo offset: Int64) throws {
    while digest.position < offset {
      let position = digest.position
      let want = Int(min(Int64(chunk.count), offset - position))
      let got = try chunk.withUnsafeMutableBytes { buf in
        try input.read(at: position, into: UnsafeMutableRawBufferPointer(rebasing: buf[0..<want]))
      }
      guard got > 0 else {
        throw BackupError(.corrupt, "\(label): the backup file is shorter than its manifest says (truncated)")
      }
      onStoredBytes?(got)
      try chunk.withUnsafeBytes { try hash(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
    }
  }

  private func mismatch() -> BackupError {
    BackupError(.corrupt, "\(label): SHA-256 mismatch", hint: "the backup file is damaged")
  }

  private func accept(_ bytes: UnsafeRawBufferPointer) throws {
    rawSeen += Int64(bytes.count)
    if rawSeen > part.rawSize {
      throw BackupError(.corrupt, "\(label): decodes to more bytes than the manifest records")
    }
    if checksHash && !hashesStored { digest.update(bytes) }
    pending.append(contentsOf: bytes)
  }

  private func checkEnd() throws {
    guard rawSeen == part.rawSize else {
      throw BackupError(
        .corrupt, "\(label): decodes to \(rawSeen) bytes, the manifest records \(part.rawSize)",
        hint: "the backup file is damaged")
    }
    guard checksHash else { return }
    let expected: String?
    let actual: String?
    if let chain {
      // a checkpoint, else the end of the payload: its SHA-256
      expected = hashEnd.state ?? chain.sha256
      actual = hashEnd.state == nil ? digest.finalizeHex() : digest.midstateHex()
    } else {
      expected = part.storedSha256 ?? part.sha256
      actual = digest.finalizeHex()
    }
    guard actual == expected else { throw mismatch() }
  }

  /// Reads the part to its end (checking it) and returns the number of raw bytes.
  @discardableResult
  public func drain() throws -> Int64 {
    var buf = [UInt8](repeating: 0, count: 256 * 1024)
    var total: Int64 = 0
    while true {
      let n = try buf.withUnsafeMutableBytes { try read(into: $0) }
      if n == 0 { return total }
      total += Int64(n)
    }
  }
}

/// SHA-256 of a whole stored file (or of its first `length` bytes), read in large chunks.
public func sha256OfFile(_ input: RandomAccessInput, onBytes: ((Int) -> Void)? = nil) throws -> String {
  var digest = SHA256Digest()
  var buffer = [UInt8](repeating: 0, count: 1 << 20)
  var offset: Int64 = 0
  while true {
    let n = try buffer.withUnsafeMutableBytes { try input.read(at: offset, into: $0) }
    if n == 0 { break }
    buffer.withUnsafeBytes { digest.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    offset += Int64(n)
    onBytes?(n)
  }
  return digest.finalizeHex()
}
