import BackupModel
import Foundation

/// The write half of the pipeline: engine bytes -> members -> compression (in parallel, written
/// in order) -> the output, with the SHA-256 of the stored (compressed) stream and its
/// checkpoints around every part computed on the way, in one pass. Memory is bounded by `memberSize * (maxInFlight + 1)` whatever the size
/// of the database.
public final class BackupFileWriter: PartSink {
  public let algorithm: CompressionAlgorithm
  public let level: Int
  public let memberSize: Int

  private let output: ByteOutput
  private let pool: CompressionPool?
  private var member: [UInt8] = []
  /// The SHA-256 of the stored stream runs on its own thread, in order, so the engine's thread
  /// only formats rows; its checkpoints at every part boundary make it each part's check too
  /// (docs/FORMAT.md, "Part checksums"). Hashing the compressed bytes rather than the decoded
  /// ones costs a fraction, and decoding is checked anyway by each member's own checksum (zstd
  /// frame checksum, gzip CRC-32, bzip2 CRC). Unencrypted, the stream is the file and its digest
  /// the file's `sha256`; an encrypted file's own hash is `HashingOutput`'s.
  private let hashing = HashLane(label: "ai-shell.hash.payload")
  private let chain: CheckpointRecorder
  private var storedBytes: Int64 = 0
  private var rawBytes: Int64 = 0

  private struct OpenPart {
    var kind: PartKind
    var table: String?
    var rawSize: Int64 = 0
    var memberRawOffset: Int64 = 0
  }
  private var current: OpenPart?
  private var parts: [Manifest.Part] = []
  /// Called after every member is written with (raw bytes so far, stored bytes so far).
  public var progress: ((Int64, Int64) -> Void)?
  /// Called with the engine's progress through its source (bytes read), when it reports it.
  public var sourceProgress: ((Int64) -> Void)?

  public func reportSourceProgress(_ bytesRead: Int64) { sourceProgress?(bytesRead) }

  public init(
    output: ByteOutput, algorithm: CompressionAlgorithm, level: Int? = nil,
    memberSize: Int = 1 << 20, workers: Int = ProcessInfo.processInfo.activeProcessorCount,
    checkpointInterval: Int64 = 64 << 20
  ) throws {
    self.output = output
    chain = CheckpointRecorder(interval: checkpointInterval)
    self.algorithm = algorithm
    self.level = level ?? algorithm.defaultLevel
    self.memberSize = memberSize
    guard Codecs.levelRange(algorithm).contains(self.level) else {
      throw BackupError(
        .usage, "compression level \(self.level) is out of range for \(algorithm.rawValue)",
        hint: "use \(Codecs.levelRange(algorithm))")
    }
    pool =
      algorithm == .none
      ? nil : try CompressionPool(algorithm: algorithm, level: self.level, workers: max(1, workers))
    member.reserveCapacity(memberSize)
  }

  public func beginPart(kind: PartKind, table: String?) throws {
    precondition(current == nil, "beginPart while a part is open")
    current = OpenPart(kind: kind, table: table)
    parts.append(
      Manifest.Part(
        kind: kind, table: table, storedOffset: 0, storedLength: 0, rawSize: 0, storedSha256: nil, rows: nil,
        contentChecksum: nil, members: []))
  }

  public func write(_ bytes: UnsafeRawBufferPointer) throws {
    guard current != nil else { preconditionFailure("write outside a part") }
    current!.rawSize += Int64(bytes.count)
    rawBytes += Int64(bytes.count)
    var rest = bytes
    while !rest.isEmpty {
      let take = min(rest.count, memberSize - member.count)
      member.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[0..<take]))
      rest = UnsafeRawBufferPointer(rebasing: rest[take...])
      if member.count == memberSize { try emitMember() }
    }
  }

  public func endPart(rows: Int64?, contentChecksum: String?) throws {
    guard let open = current else { preconditionFailure("endPart without beginPart") }
    if !member.isEmpty { try emitMember() }
    let i = parts.count - 1
    parts[i].rawSize = open.rawSize
    parts[i].rows = rows
    parts[i].contentChecksum = contentChecksum
    current = nil
  }

  private func emitMember() throws {
    let partIndex = parts.count - 1
    let raw = member
    let rawOffset = current!.memberRawOffset
    current!.memberRawOffset += Int64(raw.count)
    member.removeAll(keepingCapacity: true)
    let rawLength = Int64(raw.count)
    let record: ([UInt8]) throws -> Void = { [self] stored in
      if parts[partIndex].members.isEmpty { hashing.perform { [chain] in chain.markBoundary() } }
      hashing.update(chain, with: stored)
      try output.write(array: stored)
      parts[partIndex].members.append(
        Manifest.Member(
          rawOffset: rawOffset, rawLength: rawLength, storedOffset: storedBytes,
          storedLength: Int64(stored.count)))
      storedBytes += Int64(stored.count)
      progress?(rawBytes, storedBytes)
    }
    if let pool {
      try pool.submit(raw, then: record)
    } else {
      try record(raw)
    }
  }

  public struct Result: Sendable {
    public var parts: [Manifest.Part]
    /// Bytes handed to the output (the compressed stream).
    public var sizeBytes: Int64
    public var rawSizeBytes: Int64
    /// SHA-256 of the stream (the file's, unless it is encrypted after the writer).
    public var sha256: String
    public var checkpoints: [Manifest.Checkpoint]
  }

  /// Waits for every member to be written and returns the layout for the manifest.
  public func finish() throws -> Result {
    precondition(current == nil, "finish with a part open")
    try pool?.drainAll()
    hashing.perform { [chain] in chain.markBoundary() }
    hashing.wait()
    var offset: Int64 = 0
    for i in parts.indices {
      parts[i].storedOffset = offset
      parts[i].storedLength = parts[i].members.reduce(0) { $0 + $1.storedLength }
      offset += parts[i].storedLength
    }
    return Result(
      parts: parts, sizeBytes: storedBytes, rawSizeBytes: rawBytes, sha256: chain.finalizeHex(),
      checkpoints: chain.checkpoints.filter { $0.offset < storedBytes })
  }
}

/// Compresses members on worker threads and hands the results back in submission order on
/// the submitting thread. At most `maxInFlight` members are queued or unwritten at once, so a
/// slow output slows the producer instead of growing memory.
final class CompressionPool: @unchecked Sendable {
  private let condition = NSCondition()
  private var idle: [MemberCompressor]
  private var results: [Int: Swift.Result<[UInt8], Error>] = [:]
  private var callbacks: [Int: ([UInt8]) throws -> Void] = [:]
  private var nextSequence = 0
  private var nextToWrite = 0
  private let maxInFlight: Int
  private let queue = DispatchQueue(label: "ai-shell.compress", attributes: .concurrent)

  init(algorithm: CompressionAlgorithm, level: Int, workers: Int) throws {
    idle = try (0..<workers).map { _ in try Codecs.compressor(algorithm, level: level) }
    maxInFlight = workers * 2
  }

  func submit(_ raw: [UInt8], then write: @escaping ([UInt8]) throws -> Void) throws {
    let sequence: Int = try {
      condition.lock()
      defer { condition.unlock() }
      while nextSequence - nextToWrite >= maxInFlight {
        if try !writeReadyLocked() { condition.wait() }
      }
      let s = nextSequence
      nextSequence += 1
      callbacks[s] = write
      return s
    }()
    queue.async { [self] in
      condition.lock()
      while idle.isEmpty { condition.wait() }
      let compressor = idle.removeLast()
      condition.unlock()
      let result = Swift.Result { try raw.withUnsafeBytes { try compressor.compressMember($0) } }
      condition.lock()
      idle.append(compressor)
      results[sequence] = result
      condition.broadcast()
      condition.unlock()
    }
    condition.lock()
    defer { condition.unlock() }
    while try writeReadyLocked() {}
  }

  /// Writes the next result if it is ready; called with the lock held, returns with it held.
  private func writeReadyLocked() throws -> Bool {
    guard let result = results.removeValue(forKey: nextToWrite) else { return false }
    let write = callbacks.removeValue(forKey: nextToWrite)!
    nextToWrite += 1
    condition.unlock()
    defer { condition.lock() }
    try write(try result.get())
    return true
  }

  func drainAll() throws {
    condition.lock()
    defer { condition.unlock() }
    while nextToWrite < nextSequence {
      if try !writeReadyLocked() { condition.wait() }
    }
  }
}
