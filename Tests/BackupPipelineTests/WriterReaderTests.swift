import BackupModel
import Foundation
import TestSupport
import Testing

@testable import BackupPipeline

/// A ByteOutput / RandomAccessInput over memory.
final class MemoryFile: ByteOutput, RandomAccessInput {
  var bytes: [UInt8] = []
  var size: Int64 { Int64(bytes.count) }
  var reads: [(Int64, Int)] = []
  func write(_ b: UnsafeRawBufferPointer) throws { bytes.append(contentsOf: b) }
  func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    let n = max(0, min(buffer.count, bytes.count - Int(offset)))
    if n > 0 {
      bytes.withUnsafeBytes {
        buffer.baseAddress!.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: n)
      }
    }
    reads.append((offset, n))
    return n
  }
}

func pseudoRandom(_ count: Int, seed: UInt64) -> [UInt8] {
  var state = seed
  return (0..<count).map { i in
    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    // half repetitive, half noise, so every codec has something to do
    return i % 2 == 0 ? UInt8(truncatingIfNeeded: state >> 56) : UInt8(truncatingIfNeeded: i % 61)
  }
}

@Suite struct WriterReaderTests {
  /// Writes parts of the given sizes and returns the file and the layout.
  func write(
    _ sizes: [Int], _ algorithm: CompressionAlgorithm, memberSize: Int = 4096, workers: Int = 3,
    checkpointInterval: Int64 = 64 << 20
  ) throws -> (MemoryFile, BackupFileWriter.Result, [[UInt8]]) {
    let file = MemoryFile()
    let writer = try BackupFileWriter(
      output: file, algorithm: algorithm, memberSize: memberSize, workers: workers,
      checkpointInterval: checkpointInterval)
    var raws: [[UInt8]] = []
    for (i, size) in sizes.enumerated() {
      let raw = pseudoRandom(size, seed: UInt64(i + 1))
      raws.append(raw)
      try writer.beginPart(kind: i == 0 ? .schema : .table, table: i == 0 ? nil : "t\(i)")
      // feed in uneven slices
      var offset = 0
      var step = 1
      while offset < raw.count {
        let n = min(step, raw.count - offset)
        try raw[offset..<offset + n].withUnsafeBytes { try writer.write($0) }
        offset += n
        step = step * 3 + 1
      }
      try writer.endPart(rows: i == 0 ? nil : Int64(size), contentChecksum: nil)
    }
    return (file, try writer.finish(), raws)
  }

  func chain(_ result: BackupFileWriter.Result) -> PayloadChain {
    PayloadChain(checkpoints: result.checkpoints, size: result.sizeBytes, sha256: result.sha256)
  }

  func reader(
    _ file: MemoryFile, _ result: BackupFileWriter.Result, _ i: Int, _ algorithm: CompressionAlgorithm
  )
    throws -> PartReader
  {
    try PartReader(
      input: file, part: result.parts[i], chain: chain(result), algorithm: algorithm, label: "p\(i)")
  }

  /// The SHA-256 state after the first `offset` bytes, hashed straight through.
  func midstate(_ bytes: [UInt8], _ offset: Int64) -> String? {
    var d = SHA256Digest()
    d.update(Array(bytes[0..<Int(offset)]))
    return d.midstateHex()
  }

  @Test(arguments: CompressionAlgorithm.allCases)
  func partsRoundTripAndLayoutIsContiguous(algorithm: CompressionAlgorithm) throws {
    let (file, result, raws) = try write([100, 0, 50_000, 4096, 12_289], algorithm)
    #expect(result.sizeBytes == file.size)
    #expect(result.rawSizeBytes == Int64(raws.reduce(0) { $0 + $1.count }))
    // one pass gives the file's SHA-256 and the state at both block edges of every boundary
    #expect(result.sha256 == SHA256Digest.hex(of: file.bytes))
    let offsets = Set(result.checkpoints.map(\.offset))
    for c in result.checkpoints { #expect(c.state == midstate(file.bytes, c.offset)) }
    for part in result.parts {
      for b in [part.storedOffset, part.storedOffset + part.storedLength] {
        for edge in [b & ~63, (b + 63) & ~63] where edge > 0 && edge < result.sizeBytes {
          #expect(offsets.contains(edge), "no checkpoint at \(edge) for boundary \(b)")
        }
      }
    }
    var offset: Int64 = 0
    for (i, part) in result.parts.enumerated() {
      #expect(part.storedOffset == offset)
      #expect(part.rawSize == Int64(raws[i].count))
      #expect(part.storedSha256 == nil && part.sha256 == nil)
      #expect(part.members.allSatisfy { $0.rawLength <= 4096 && $0.rawLength > 0 })
      #expect(part.members.count == (raws[i].count + 4095) / 4096)
      offset += part.storedLength
      let reader = try reader(file, result, i, algorithm)
      var decoded = [UInt8]()
      var buf = [UInt8](repeating: 0, count: 777)
      while true {
        let n = try buf.withUnsafeMutableBytes { try reader.read(into: $0) }
        if n == 0 { break }
        decoded += buf[0..<n]
      }
      #expect(decoded == raws[i])
    }
    // the manifest invariants hold for what the writer produced
    let manifest = Manifest(
      id: "backup-20260101T000000Z-abcd", name: nil, createdAt: Date(), durationSeconds: 0,
      database: .init(engine: .sqlite, location: "/x.db", serverVersion: "3", sizeBytes: nil), format: .sql,
      compression: .init(algorithm: algorithm, level: 1, memberSizeBytes: 4096),
      file: .init(name: "f", sizeBytes: result.sizeBytes, sha256: SHA256Digest.hex(of: file.bytes)),
      rawSizeBytes: result.rawSizeBytes,
      parts: result.parts, objects: [], sha256Checkpoints: result.checkpoints)
    try manifest.validate()
    #expect(manifest.formatVersion == 4)
    #expect(manifest.payloadChain == chain(result))
  }

  @Test func aResumedHashEqualsOneStraightThrough() throws {
    let bytes = pseudoRandom(10_000, seed: 3)
    for cut in [64, 640, 9_984] {
      let state = try #require(midstate(bytes, Int64(cut)))
      var resumed = try #require(SHA256Digest(resumingAt: Int64(cut), midstate: state))
      resumed.update(Array(bytes[cut...]))
      #expect(resumed.finalizeHex() == SHA256Digest.hex(of: bytes))
    }
    #expect(midstate(bytes, 100) == nil)  // not on a block edge
    #expect(SHA256Digest(resumingAt: 64, midstate: "zz") == nil)
    #expect(SHA256Digest(resumingAt: 65, midstate: midstate(bytes, 64)!) == nil)
  }

  @Test func checkpointsAreRecordedEveryInterval() throws {
    let (file, result, _) = try write([100, 50_000], .none, checkpointInterval: 4096)
    let offsets = result.checkpoints.map(\.offset)
    #expect(offsets == offsets.sorted() && Set(offsets).count == offsets.count)
    for k in stride(from: Int64(4096), to: result.sizeBytes, by: 4096) { #expect(offsets.contains(k)) }
    for c in result.checkpoints { #expect(c.state == midstate(file.bytes, c.offset)) }
  }

  /// A damaged byte in a long part stops the read at the first checkpoint after it, before the
  /// rest of the part is decoded.
  @Test func damageIsFoundAtTheNextCheckpoint() throws {
    let (file, result, _) = try write([10, 300_000], .none, checkpointInterval: 4096)
    let part = result.parts[1]
    file.bytes[Int(part.storedOffset) + 5_000] ^= 0x01
    let r = try reader(file, result, 1, .none)
    var decoded = 0
    var buf = [UInt8](repeating: 0, count: 1000)
    #expect {
      while case let n = try buf.withUnsafeMutableBytes({ try r.read(into: $0) }), n > 0 { decoded += n }
    } throws: { ($0 as? BackupError)?.status == .corrupt }
    #expect(decoded < 20_000)
  }

  @Test func readerReadsOnlyItsPartsRange() throws {
    let (file, result, _) = try write([1000, 200_000, 300], .zstd)
    for i in result.parts.indices {
      let part = result.parts[i]
      file.reads.removeAll()
      try reader(file, result, i, .zstd).drain()
      // the part, and the rest of the 64-byte blocks at its two ends (the checkpoints' edges)
      let from = part.storedOffset & ~63
      let to = min((part.storedOffset + part.storedLength + 63) & ~63, result.sizeBytes)
      #expect(file.reads.allSatisfy { $0.0 >= from && $0.0 + Int64($0.1) <= to })
      #expect(file.reads.reduce(0) { $0 + $1.1 } == Int(to - from))
    }
  }

  @Test(arguments: [CompressionAlgorithm.gzip, .zstd, .none])
  func corruptionIsDetectedAtTheEndOfThePart(algorithm: CompressionAlgorithm) throws {
    let (original, result, _) = try write([10, 30_000, 200], algorithm)
    let part = result.parts[1]
    // its first, middle and last stored byte
    for at in [
      part.storedOffset, part.storedOffset + part.storedLength / 2, part.storedOffset + part.storedLength - 1,
    ] {
      let file = MemoryFile()
      file.bytes = original.bytes
      file.bytes[Int(at)] ^= 0x01
      #expect {
        try reader(file, result, 1, algorithm).drain()
      } throws: { ($0 as? BackupError)?.status == .corrupt }
    }
    // a manifest's checkpoint that does not match the file
    var forged = result
    forged.checkpoints[0].state = String(forged.checkpoints[0].state.reversed())
    #expect {
      for i in forged.parts.indices { try reader(original, forged, i, algorithm).drain() }
    } throws: { ($0 as? BackupError)?.status == .corrupt }
  }

  /// Without its hash check (bytes the whole file's SHA-256 already proved: verify --deep after
  /// PayloadChainCheck) a reader decodes only the part's range and still checks its size.
  @Test func readerWithoutTheHashCheckDecodesAndSizes() throws {
    let (file, result, raws) = try write([1000, 200_000, 300], .zstd)
    for i in result.parts.indices {
      let part = result.parts[i]
      file.reads.removeAll()
      let r = try PartReader(
        input: file, part: part, chain: chain(result), algorithm: .zstd, label: "p\(i)", checksHash: false)
      var out = [UInt8]()
      var buf = [UInt8](repeating: 0, count: 4096)
      while case let n = try buf.withUnsafeMutableBytes({ try r.read(into: $0) }), n > 0 { out += buf[0..<n] }
      #expect(out == raws[i])
      // the part's own bytes only: no checkpoint edges
      #expect(file.reads.reduce(0) { $0 + $1.1 } == Int(part.storedLength))
    }
    // a part that decodes to another size than recorded is still refused
    var short = result.parts[1]
    short.rawSize -= 1
    #expect {
      try PartReader(
        input: file, part: short, chain: chain(result), algorithm: .zstd, label: "p", checksHash: false
      )
      .drain()
    } throws: { ($0 as? BackupError)?.message.contains("decodes to more bytes") == true }
  }

  /// Version 3 manifests carry each part's SHA-256 of its stored bytes; a reader still checks it.
  @Test func version3PartsAreCheckedAgainstTheirOwnHash() throws {
    let (file, result, _) = try write([10, 30_000], .zstd)
    var part = result.parts[1]
    let range = Int(part.storedOffset)..<Int(part.storedOffset + part.storedLength)
    part.storedSha256 = SHA256Digest.hex(of: Array(file.bytes[range]))
    #expect(
      try PartReader(input: file, part: part, chain: nil, algorithm: .zstd, label: "p").drain() == 30_000)
    part.storedSha256 = SHA256Digest.hex(of: Array(file.bytes[0..<10]))
    #expect {
      try PartReader(input: file, part: part, chain: nil, algorithm: .zstd, label: "p").drain()
    } throws: { ($0 as? BackupError)?.status == .corrupt }
  }

  /// Manifests written before `storedSha256` carry the SHA-256 of the decoded part instead; a
  /// reader still checks it.
  @Test(arguments: [CompressionAlgorithm.gzip, .zstd, .none])
  func olderManifestsAreCheckedAgainstTheDecodedHash(algorithm: CompressionAlgorithm) throws {
    let (file, result, raws) = try write([10, 30_000], algorithm)
    var legacy = result.parts[1]
    legacy.storedSha256 = nil
    legacy.sha256 = SHA256Digest.hex(of: raws[1])
    #expect(
      try PartReader(input: file, part: legacy, chain: nil, algorithm: algorithm, label: "p").drain()
        == 30_000)
    legacy.sha256 = SHA256Digest.hex(of: raws[0])
    #expect {
      try PartReader(input: file, part: legacy, chain: nil, algorithm: algorithm, label: "p").drain()
    } throws: { ($0 as? BackupError)?.status == .corrupt }
  }

  @Test func truncatedFileIsCorrupt() throws {
    let (file, result, _) = try write([10, 30_000], .gzip)
    file.bytes.removeLast(100)
    #expect {
      try reader(file, result, 1, .gzip).drain()
    } throws: { ($0 as? BackupError)?.status == .corrupt }
  }

  @Test func parallelCompressionKeepsOrder() throws {
    // many small members across 4 workers must come back in submission order
    let (file, result, raws) = try write([300_000], .gzip, memberSize: 1000, workers: 4)
    let decoded = try { () -> [UInt8] in
      let r = try reader(file, result, 0, .gzip)
      var out = [UInt8]()
      var buf = [UInt8](repeating: 0, count: 65536)
      while case let n = try buf.withUnsafeMutableBytes({ try r.read(into: $0) }), n > 0 { out += buf[0..<n] }
      return out
    }()
    #expect(decoded == raws[0])
    #expect(result.parts[0].members.count == 300)
  }

  @Test func hashingOutputHashesWhatReachesTheFile() throws {
    let file = MemoryFile()
    let hashing = HashingOutput(file)
    let writer = try BackupFileWriter(output: hashing, algorithm: .zstd, memberSize: 1000)
    try writer.beginPart(kind: .schema, table: nil)
    try pseudoRandom(10_000, seed: 9).withUnsafeBytes { try writer.write($0) }
    try writer.endPart(rows: nil, contentChecksum: nil)
    let result = try writer.finish()
    #expect(hashing.bytesWritten == result.sizeBytes)
    #expect(hashing.finalizeHex() == SHA256Digest.hex(of: file.bytes))
    #expect(result.sha256 == hashing.finalizeHex())
  }

  @Test func outOfRangeLevelIsAUsageError() {
    #expect {
      _ = try BackupFileWriter(output: MemoryFile(), algorithm: .gzip, level: 42)
    } throws: { ($0 as? BackupError)?.status == .usage }
  }
}

@Suite struct InputReaderTests {
  /// COPY-style rows with lines longer than the reader's buffer, read in chunks by
  /// `appendLines` (lines are never cut), with the terminator line anywhere, even across buffer
  /// refills: the chunks add up to exactly the lines before the terminator, and what follows
  /// the terminator is still readable.
  @Test(arguments: [7, 64, 4096]) func appendLinesKeepsWholeLinesAndStopsAtTheTerminator(bufferSize: Int)
    throws
  {
    var rows: [UInt8] = []
    for i in 0..<500 {
      rows += Array("\(i)\t\(String(repeating: "x", count: i % 97))\\\\.\n".utf8)
    }
    let text = rows + Array("\\.\nafter\n".utf8)
    let reader = InputReader(MemorySource(text, chunk: 13), bufferSize: bufferSize)
    var got: [UInt8] = []
    var chunk: [UInt8] = []
    var stopped = false
    while !stopped {
      chunk.removeAll()
      stopped = try reader.appendLines(upTo: 1000, to: &chunk, until: Array("\\.\n".utf8))
      #expect(chunk.isEmpty || chunk.last == 0x0A, "chunks end at a line end")
      if !stopped { #expect(chunk.count >= 1000) }
      got += chunk
    }
    #expect(got == rows)
    var line: [UInt8] = []
    #expect(try reader.readLine(into: &line) && line == Array("after\n".utf8))
  }

  @Test func appendLinesAtTheEndWithoutTerminator() throws {
    for tail in ["a\nb\n", "a\nb", "a\n\\."] {
      let reader = InputReader(MemorySource(Array(tail.utf8), chunk: 1), bufferSize: 2)
      var out: [UInt8] = []
      let stopped = try reader.appendLines(upTo: 1 << 20, to: &out, until: Array("\\.\n".utf8))
      #expect(stopped == (tail == "a\n\\."), "\(tail)")
      #expect(out == Array((tail == "a\n\\." ? "a\n" : tail).utf8))
    }
  }
}
