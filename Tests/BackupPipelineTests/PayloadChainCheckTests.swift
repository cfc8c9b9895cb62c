import BackupModel
import BackupStorage
import Foundation
import Testing

@testable import BackupPipeline

/// A file the test appends to (a download being written).
final class GrowingFile {
  let path: String
  let fd: Int32
  init() throws {
    path = NSTemporaryDirectory() + "chain-\(UUID().uuidString)"
    fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0o600)
    guard fd >= 0 else { throw BackupError(.storage, "cannot create \(path)") }
  }
  deinit {
    close(fd)
    unlink(path)
  }
  var size: Int64 { Int64(lseek(fd, 0, SEEK_END)) }
  func append(_ bytes: ArraySlice<UInt8>) {
    _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, off_t(size)) }
  }
}

/// `PayloadChainCheck` against chains OpenSSL recorded (BackupFileWriter): every kernel this
/// CPU has, stretches of uneven lengths, damage in every stretch, and checking behind a writer.
@Suite struct PayloadChainCheckTests {
  /// Each kernel this CPU runs alone (16 lanes AVX-512, 8 lanes AVX-512VL, 8 lanes AVX2; alone,
  /// the 16-lane one also runs batches of 3 to 8 stretches, its spare lanes hashing copies), all
  /// of them, and OpenSSL alone (0).
  static let kernelSets = [4, 2, 1, 7, 0].filter { $0 & PayloadChainCheck.availableKernels == $0 }

  /// A backup file of parts of the given sizes with a checkpoint every `interval` bytes.
  func backup(_ sizes: [Int], interval: Int64) throws -> (MemoryFile, PayloadChain) {
    let (file, result, _) = try WriterReaderTests().write(sizes, .none, checkpointInterval: interval)
    return (
      file, PayloadChain(checkpoints: result.checkpoints, size: result.sizeBytes, sha256: result.sha256)
    )
  }

  @Test(arguments: kernelSets) func anIntactPayloadPasses(kernels: Int) throws {
    // 40 equal stretches, then the tail; and one with many short, uneven ones
    for (sizes, interval) in [
      ([10, 2_600_000], Int64(65536)), ([100, 0, 50_000, 64, 4096, 12_289, 3], 4096),
    ] {
      let (file, chain) = try backup(sizes, interval: interval)
      #expect(chain.checkpoints.count > 10)
      let check = PayloadChainCheck(chain: chain, input: file, label: "f", kernels: kernels)
      try check.finish()
    }
  }

  @Test(arguments: kernelSets) func damageInAnyStretchIsFoundAndNamed(kernels: Int) throws {
    let (file, chain) = try backup([10, 700_000], interval: 65536)
    let edges = [0] + chain.checkpoints.map(\.offset) + [chain.size]
    // one damaged byte inside every stretch in turn (the first, the middle ones, the last)
    for i in 0..<(edges.count - 1) {
      let (start, end) = (edges[i], edges[i + 1])
      let at = Int((start + end) / 2)
      file.bytes[at] ^= 0x40
      defer { file.bytes[at] ^= 0x40 }
      let check = PayloadChainCheck(chain: chain, input: file, label: "s3://b/x.sql", kernels: kernels)
      let error = #expect(throws: BackupError.self) { try check.finish() }
      #expect(error?.status == .corrupt)
      #expect(
        error?.message
          == "s3://b/x.sql fails its SHA-256 check: bytes \(start)..<\(end) are not the ones the backup wrote"
      )
    }
  }

  @Test func aWrongRecordedStateOrDigestFails() throws {
    let (file, chain) = try backup([10, 300_000], interval: 65536)
    var bad = chain
    bad.checkpoints[2].state = String(repeating: "0", count: 64)
    #expect(throws: BackupError.self) { try PayloadChainCheck.check(chain: bad, input: file, label: "f") }
    // a checkpoint off a block edge, out of order or past the end: refused, nothing hashed
    for offset in [chain.checkpoints[1].offset + 1, chain.checkpoints[0].offset, chain.size + 64] {
      bad = chain
      bad.checkpoints[1].offset = offset
      let error = #expect(throws: BackupError.self) {
        try PayloadChainCheck.check(chain: bad, input: file, label: "f")
      }
      #expect(error?.message.contains("is malformed") == true, "\(String(describing: error))")
    }
    bad = chain
    bad.sha256 = String(repeating: "0", count: 64)
    #expect(throws: BackupError.self) { try PayloadChainCheck.check(chain: bad, input: file, label: "f") }
    try PayloadChainCheck.check(chain: chain, input: file, label: "f")
  }

  @Test func aShortPayloadIsCorrupt() throws {
    let (file, chain) = try backup([10, 300_000], interval: 65536)
    file.bytes.removeLast(5000)
    let error = #expect(throws: BackupError.self) {
      try PayloadChainCheck.check(chain: chain, input: file, label: "f")
    }
    #expect(error?.status == .corrupt)
  }

  /// The download case: the checker runs behind a writer that appends in uneven pieces, reading
  /// the file as `import --cloud` does (LocalFileInput: mapped, not copied).
  @Test(arguments: kernelSets) func checksBehindAWriter(kernels: Int) throws {
    let (memory, chain) = try backup([10, 3_000_000], interval: 65536)
    for damage in [false, true] {
      let file = try GrowingFile()
      var bytes = memory.bytes
      if damage { bytes[2_000_000] ^= 1 }
      let check = PayloadChainCheck(
        chain: chain, input: try LocalFileInput(path: file.path), label: "f", kernels: kernels)
      var offset = 0
      var step = 1000
      while offset < bytes.count {
        let n = min(step, bytes.count - offset)
        file.append(bytes[offset..<offset + n])
        offset += n
        check.advance(to: Int64(offset))
        step = step * 2 + 7
      }
      if damage {
        #expect(throws: BackupError.self) { try check.finish() }
      } else {
        try check.finish()
      }
    }
  }

  @Test func cancelStopsTheThread() throws {
    let (file, chain) = try backup([10, 1_000_000], interval: 65536)
    let check = PayloadChainCheck(chain: chain, input: file, label: "f")
    check.advance(to: 500_000)
    check.cancel()
    check.cancel()
  }
}
