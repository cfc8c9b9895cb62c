import BackupModel
import BackupPipeline
import Foundation
import TestSupport
import Testing

// MARK: - Helpers

/// Deterministic pseudo-random bytes (SplitMix64).
private struct SplitMix64 {
  var state: UInt64
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

/// 3 MiB that alternates pseudo-random stretches with repetitive text, so every codec has both
/// incompressible and compressible blocks.
private let bigMember: [UInt8] = {
  var rng = SplitMix64(state: 42)
  var bytes: [UInt8] = []
  bytes.reserveCapacity(3 << 20)
  let text = Array("INSERT INTO \"t\" VALUES(1,'repetitive row text',3.25,NULL);\n".utf8)
  while bytes.count < 3 << 20 {
    let randomLength = Int(rng.next() % 40_000)
    for _ in 0..<(randomLength / 8) {
      withUnsafeBytes(of: rng.next()) { bytes.append(contentsOf: $0) }
    }
    for _ in 0..<Int(rng.next() % 2_000) { bytes.append(contentsOf: text) }
  }
  return Array(bytes.prefix(3 << 20))
}()

private let members: [[UInt8]] = [
  Array("-- first member\nCREATE TABLE t(a, b);\n".utf8),
  [],
  bigMember,
  Array(repeating: 0x41, count: 100_000),
  Array("last member without newline".utf8),
]

private let compressedAlgorithms: [CompressionAlgorithm] = [.gzip, .bzip2, .zstd]

private func compressMembers(_ algorithm: CompressionAlgorithm, _ members: [[UInt8]], level: Int? = nil)
  throws -> [UInt8]
{
  let compressor = try Codecs.compressor(algorithm, level: level ?? algorithm.defaultLevel)
  var out: [UInt8] = []
  for member in members {
    out += try member.withUnsafeBytes { try compressor.compressMember($0) }
  }
  return out
}

/// Decodes `stored` by feeding it in slices of `slice` bytes, then calls finish.
private func decode(_ algorithm: CompressionAlgorithm, _ stored: [UInt8], slice: Int = 65_536) throws
  -> [UInt8]
{
  let decompressor = try Codecs.decompressor(algorithm)
  var out: [UInt8] = []
  try stored.withUnsafeBytes { all in
    var offset = 0
    while offset < all.count {
      let n = min(slice, all.count - offset)
      try decompressor.decompress(UnsafeRawBufferPointer(rebasing: all[offset..<offset + n])) {
        out.append(contentsOf: $0)
      }
      offset += n
    }
  }
  try decompressor.finish { out.append(contentsOf: $0) }
  return out
}

private func expectCorrupt(
  _ algorithm: CompressionAlgorithm, _ stored: [UInt8], slice: Int = 65_536,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  let error = #expect(throws: BackupError.self, sourceLocation: sourceLocation) {
    _ = try decode(algorithm, stored, slice: slice)
  }
  #expect(error?.status == .corrupt, sourceLocation: sourceLocation)
  #expect(
    error?.message.hasPrefix("\(algorithm.rawValue) data is corrupt: ") == true,
    "message: \(error?.message ?? "nil")", sourceLocation: sourceLocation)
}

private func decompressCommand(_ algorithm: CompressionAlgorithm) -> (String, [String]) {
  switch algorithm {
  case .gzip: return ("gzip", ["-dc"])
  case .bzip2: return ("bunzip2", ["-c"])
  case .zstd: return ("zstd", ["-q", "-dc"])
  case .none: return ("cat", [])
  }
}

private func compressCommand(_ algorithm: CompressionAlgorithm) -> String {
  switch algorithm {
  case .gzip: return "gzip -c"
  case .bzip2: return "bzip2 -c"
  case .zstd: return "zstd -q -c"
  case .none: return "cat"
  }
}

// MARK: - Round trips

@Test(arguments: CompressionAlgorithm.allCases, [1, 7, 65_536])
func roundTripOfConcatenatedMembers(algorithm: CompressionAlgorithm, slice: Int) throws {
  let stored = try compressMembers(algorithm, members)
  let expected = members.flatMap { $0 }
  if algorithm == .none {
    #expect(stored == expected)
  } else {
    // the random half keeps it large, the repetitive half must shrink
    #expect(stored.count < expected.count)
  }
  let decoded = try decode(algorithm, stored, slice: slice)
  #expect(decoded.count == expected.count)
  #expect(decoded == expected)
}

@Test(arguments: CompressionAlgorithm.allCases)
func emptyMemberIsValidAndReusableCompressor(algorithm: CompressionAlgorithm) throws {
  let compressor = try Codecs.compressor(algorithm, level: algorithm.defaultLevel)
  let empty = try [UInt8]().withUnsafeBytes { try compressor.compressMember($0) }
  #expect(empty.isEmpty == (algorithm == .none))
  #expect(try decode(algorithm, empty).isEmpty)
  // the same instance keeps producing independent, decodable members
  let a = try Array("abc".utf8).withUnsafeBytes { try compressor.compressMember($0) }
  let b = try Array("abc".utf8).withUnsafeBytes { try compressor.compressMember($0) }
  #expect(a == b)
  #expect(try decode(algorithm, b) == Array("abc".utf8))
  #expect(try decode(algorithm, empty + a + empty + b, slice: 3) == Array("abcabc".utf8))
}

@Test(arguments: CompressionAlgorithm.allCases)
func everyValidLevelRoundTrips(algorithm: CompressionAlgorithm) throws {
  let sample = Array(bigMember.prefix(200_000))
  for level in Codecs.levelRange(algorithm) {
    let stored = try compressMembers(algorithm, [sample, sample], level: level)
    #expect(try decode(algorithm, stored) == sample + sample, "level \(level)")
  }
}

// MARK: - Interop with the command-line tools

@Test(arguments: CompressionAlgorithm.allCases)
func standardToolDecodesOurMembers(algorithm: CompressionAlgorithm) throws {
  let dir = TempDir()
  let path = dir.file("members" + algorithm.fileExtension)
  let stored = try compressMembers(algorithm, members)
  try Data(stored).write(to: URL(fileURLWithPath: path))
  let (tool, arguments) = decompressCommand(algorithm)
  let result = try runProcess(tool, arguments + [path])
  #expect(result.status == 0, "\(tool) failed: \(String(decoding: result.stderr, as: UTF8.self))")
  #expect(result.stdout == Data(members.flatMap { $0 }))
}

@Test(arguments: CompressionAlgorithm.allCases)
func weDecodeStandardToolOutput(algorithm: CompressionAlgorithm) throws {
  let dir = TempDir()
  let first = Array(bigMember.prefix(1_500_000))
  let second = Array("second file\n".utf8) + Array(bigMember.suffix(300_000))
  try Data(first).write(to: URL(fileURLWithPath: dir.file("a")))
  try Data(second).write(to: URL(fileURLWithPath: dir.file("b")))
  let tool = compressCommand(algorithm)
  let r = try shell(
    "cd '\(dir.path)' && \(tool) a > a.c && \(tool) b > b.c && cat a.c b.c > ab.c")
  #expect(r.status == 0, "\(r.stderr)")
  let single = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir.file("a.c"))))
  let both = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir.file("ab.c"))))
  #expect(try decode(algorithm, single) == first)
  #expect(try decode(algorithm, both, slice: 7) == first + second)
  #expect(try decode(algorithm, both, slice: 65_536) == first + second)
}

// MARK: - Corruption

@Test(arguments: compressedAlgorithms)
func flippedByteIsCorrupt(algorithm: CompressionAlgorithm) throws {
  let stored = try compressMembers(algorithm, members)
  for position in [stored.count / 2, stored.count / 3, stored.count - 5] {
    var damaged = stored
    damaged[position] ^= 0x5A
    expectCorrupt(algorithm, damaged)
  }
}

@Test(arguments: compressedAlgorithms)
func truncatedInputIsCorrupt(algorithm: CompressionAlgorithm) throws {
  let stored = try compressMembers(algorithm, members)
  let lastMember = try compressMembers(algorithm, [members.last!])
  for cut in [stored.count / 2, stored.count - 1, stored.count - lastMember.count + 1, 1] {
    expectCorrupt(algorithm, Array(stored.prefix(cut)))
    expectCorrupt(algorithm, Array(stored.prefix(cut)), slice: 7)
  }
  // cut exactly at a member boundary is a valid (shorter) stream
  let boundary = stored.count - lastMember.count
  #expect(try decode(algorithm, Array(stored.prefix(boundary))) == members.dropLast().flatMap { $0 })
}

@Test(arguments: compressedAlgorithms)
func trailingGarbageIsCorrupt(algorithm: CompressionAlgorithm) throws {
  let stored = try compressMembers(algorithm, [Array("hello\n".utf8)])
  expectCorrupt(algorithm, stored + Array("garbage after the last member".utf8))
  expectCorrupt(algorithm, stored + [UInt8](repeating: 0, count: 16))
  expectCorrupt(algorithm, stored + [0x00])
  expectCorrupt(algorithm, Array("not compressed at all, just text".utf8))
}

@Test(arguments: compressedAlgorithms)
func decoderFailsCleanlyOnRandomGarbage(algorithm: CompressionAlgorithm) throws {
  var rng = SplitMix64(state: 7)
  let header = try compressMembers(algorithm, [Array("x".utf8)]).prefix(4)
  for _ in 0..<20 {
    var junk = [UInt8](header)
    for _ in 0..<64 { withUnsafeBytes(of: rng.next()) { junk.append(contentsOf: $0) } }
    expectCorrupt(algorithm, junk)
  }
}

// MARK: - Levels

@Test func levelRanges() {
  #expect(Codecs.levelRange(.gzip) == 1...9)
  #expect(Codecs.levelRange(.bzip2) == 1...9)
  #expect(Codecs.levelRange(.zstd) == 1...19)
  #expect(Codecs.levelRange(.none) == 0...0)
  for algorithm in CompressionAlgorithm.allCases {
    #expect(Codecs.levelRange(algorithm).contains(algorithm.defaultLevel))
  }
}

@Test(arguments: CompressionAlgorithm.allCases)
func invalidLevelsAreUsageErrors(algorithm: CompressionAlgorithm) {
  let range = Codecs.levelRange(algorithm)
  for level in [range.lowerBound - 1, range.upperBound + 1, -100, 1_000] {
    let error = #expect(throws: BackupError.self, "level \(level)") {
      _ = try Codecs.compressor(algorithm, level: level)
    }
    #expect(error?.status == .usage)
  }
}
