import BackupModel
import Crypto
import Foundation

/// Encrypts everything written to it into `output`: header first, then 64 KiB STREAM chunks.
/// Streaming with constant memory (one chunk is buffered). `finish()` writes the final chunk and
/// must be called exactly once; without it the file is truncated and will not decrypt.
public final class AgeEncryptingOutput: ByteOutput {
  private let output: ByteOutput
  private let payloadKey: SymmetricKey
  private var chunk: [UInt8]
  private var counter: UInt64 = 0
  private var finished = false
  /// Plaintext bytes written so far.
  public private(set) var plaintextBytes: Int64 = 0

  public init(output: ByteOutput, recipients: [AgeRecipient]) throws {
    guard !recipients.isEmpty else {
      throw BackupError(.usage, "age encryption needs at least one recipient")
    }
    if recipients.count > 1, recipients.contains(where: { if case .scrypt = $0 { true } else { false } }) {
      throw BackupError(.usage, "an age passphrase cannot be combined with other recipients")
    }
    self.output = output
    var rng = SystemRandomNumberGenerator()
    let fileKey = (0..<AgeFormat.fileKeySize).map { _ in UInt8.random(in: 0...255, using: &rng) }
    let nonce = (0..<AgeFormat.nonceSize).map { _ in UInt8.random(in: 0...255, using: &rng) }
    let stanzas = try recipients.map { try AgeFormat.wrap(fileKey: fileKey, for: $0) }
    var header = AgeFormat.encodeHeaderWithoutMAC(stanzas)
    let mac = AgeFormat.headerMAC(fileKey: fileKey, headerWithoutMAC: header)
    header.append(0x20)
    header += AgeBase64.encode(mac)
    header.append(0x0A)
    header += nonce
    payloadKey = AgeFormat.payloadKey(fileKey: fileKey, nonce: nonce)
    chunk = []
    chunk.reserveCapacity(AgeFormat.chunkSize)
    try header.withUnsafeBytes { try output.write($0) }
  }

  public func write(_ bytes: UnsafeRawBufferPointer) throws {
    precondition(!finished, "write after finish")
    var offset = 0
    while offset < bytes.count {
      // A full chunk is sealed only once more data follows: the final chunk may be full.
      if chunk.count == AgeFormat.chunkSize {
        try seal(chunk, last: false)
        chunk.removeAll(keepingCapacity: true)
      }
      // whole chunks with more data after them are sealed straight from the caller's buffer
      while chunk.isEmpty && bytes.count - offset > AgeFormat.chunkSize {
        try seal(UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + AgeFormat.chunkSize]), last: false)
        offset += AgeFormat.chunkSize
      }
      let take = min(AgeFormat.chunkSize - chunk.count, bytes.count - offset)
      chunk.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + take]))
      offset += take
    }
    plaintextBytes += Int64(bytes.count)
  }

  public func finish() throws {
    precondition(!finished, "finish called twice")
    finished = true
    try seal(chunk, last: true)
  }

  private func seal<Plaintext: DataProtocol>(_ plaintext: Plaintext, last: Bool) throws {
    let nonce = try ChaChaPoly.Nonce(data: streamNonce(counter: counter, last: last))
    let box = try ChaChaPoly.seal(plaintext, using: payloadKey, nonce: nonce)
    // ciphertext then tag, each as sealed: `combined` would copy the whole chunk once more
    try box.ciphertext.withUnsafeBytes { try output.write($0) }
    try box.tag.withUnsafeBytes { try output.write($0) }
    counter += 1
  }
}

/// The 12-byte STREAM nonce: an 11-byte big-endian chunk counter and the last-chunk flag.
func streamNonce(counter: UInt64, last: Bool) -> [UInt8] {
  var nonce = [UInt8](repeating: 0, count: 12)
  var c = counter
  for i in stride(from: 10, through: 3, by: -1) {
    nonce[i] = UInt8(truncatingIfNeeded: c)
    c >>= 8
  }
  nonce[11] = last ? 1 : 0
  return nonce
}
