import BackupModel
import Crypto
import Foundation

/// Random access over an age file: a read decrypts only the 64 KiB chunks it needs (the last one
/// is cached), so a ranged read of a large file reads a small fraction of it. Every byte returned
/// comes from a chunk that authenticated. `size` is the plaintext size, computed from the
/// ciphertext size and the header length; the final chunk is checked to be marked final when it is
/// read. An ASCII-armored file is decoded into memory first (armor is meant for small files).
public final class AgeDecryptingInput: RandomAccessInput {
  private let payload: AgePayload
  private var cachedIndex: Int64 = -1
  private var cached = Data()

  /// - Parameter armored: true or false to require or refuse ASCII armor; nil detects it.
  public init(input: RandomAccessInput, identities: [AgeIdentity], armored: Bool? = nil) throws {
    payload = try AgePayload(input: input, identities: identities, armored: armored)
    if payload.chunkCount == 0 { throw AgeFailure.payload("the file has no payload chunks (truncated)") }
    if payload.lastChunkLength < AgeFormat.tagSize {
      throw AgeFailure.payload("the final chunk is shorter than its tag (truncated)")
    }
    if payload.lastChunkLength == AgeFormat.tagSize && payload.chunkCount > 1 {
      throw AgeFailure.payload("the final chunk is empty but the payload is not")
    }
    size = payload.cipherLength - Int64(AgeFormat.tagSize) * payload.chunkCount
  }

  /// The plaintext size.
  public let size: Int64

  /// Ciphertext bytes read from the underlying input so far (header included).
  public var storedBytesRead: Int64 { payload.storedBytesRead }

  public func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    guard offset >= 0 else { throw BackupError(.failure, "negative read offset \(offset)") }
    var done = 0
    var position = offset
    while done < buffer.count && position < size {
      let index = position / Int64(AgeFormat.chunkSize)
      if index != cachedIndex {
        cachedIndex = -1
        cached = try payload.openStrict(index)
        cachedIndex = index
      }
      let within = Int(position - index * Int64(AgeFormat.chunkSize))
      let take = min(cached.count - within, buffer.count - done)
      guard take > 0 else { break }
      cached.withUnsafeBytes { src in
        buffer.baseAddress!.advanced(by: done).copyMemory(from: src.baseAddress! + within, byteCount: take)
      }
      done += take
      position += Int64(take)
    }
    return done
  }
}

/// Sequential decryption with the spec's partial-plaintext rule: each chunk's plaintext is handed
/// to the sink only after that chunk authenticates, and a failure stops at the first bad chunk.
public enum AgeStream {
  /// - Parameter armored: true or false to require or refuse ASCII armor; nil detects it.
  public static func decrypt(
    _ input: RandomAccessInput, identities: [AgeIdentity], armored: Bool? = nil,
    to out: (UnsafeRawBufferPointer) throws -> Void
  ) throws {
    let payload = try AgePayload(input: input, identities: identities, armored: armored)
    guard payload.chunkCount > 0 else {
      throw AgeFailure.payload("the file has no payload chunks (truncated)")
    }
    for index in 0..<payload.chunkCount {
      let atEnd = index == payload.chunkCount - 1
      let sealed = try payload.readSealed(index)
      if sealed.count < AgeFormat.sealedChunkSize {
        // A short chunk is the final one and must be marked final; only a lone chunk may be empty.
        if sealed.count < AgeFormat.tagSize { throw AgeFailure.payload("the final chunk is truncated") }
        if index > 0 && sealed.count == AgeFormat.tagSize {
          throw AgeFailure.payload("the final chunk is empty but the payload is not")
        }
        guard let plain = payload.open(sealed, index: index, last: true) else {
          throw AgeFailure.payload("chunk \(index) failed to authenticate (modified or truncated)")
        }
        try plain.withUnsafeBytes { try out($0) }
        return
      }
      if let plain = payload.open(sealed, index: index, last: false) {
        try plain.withUnsafeBytes { try out($0) }
        if atEnd { throw AgeFailure.payload("the file is truncated (no final chunk)") }
      } else if let plain = payload.open(sealed, index: index, last: true) {
        try plain.withUnsafeBytes { try out($0) }
        if !atEnd { throw AgeFailure.payload("there is data after the final chunk") }
      } else {
        throw AgeFailure.payload("chunk \(index) failed to authenticate (modified or truncated)")
      }
    }
  }
}

/// The opened payload of an age file: the header was read and authenticated, the file key found.
final class AgePayload {
  private let input: RandomAccessInput
  private let key: SymmetricKey
  private let payloadStart: Int64
  let cipherLength: Int64
  let chunkCount: Int64
  let lastChunkLength: Int
  private(set) var storedBytesRead: Int64 = 0
  private var sealed: [UInt8]

  init(input original: RandomAccessInput, identities: [AgeIdentity], armored: Bool?) throws {
    var bytesRead: Int64 = 0
    let isArmored = try armored ?? AgeArmor.looksArmored(original, bytesRead: &bytesRead)
    let input: RandomAccessInput =
      isArmored ? AgeMemoryInput(try AgeArmor.decode(original, bytesRead: &bytesRead)) : original
    let header = try AgeHeader.read(from: input, counting: &bytesRead)
    let fileKey = try header.fileKey(identities: identities)
    var nonce = [UInt8](repeating: 0, count: AgeFormat.nonceSize)
    let n = try nonce.withUnsafeMutableBytes { try readFully(input, at: Int64(header.length), into: $0) }
    bytesRead += Int64(n)
    guard n == AgeFormat.nonceSize else { throw AgeFailure.header("the payload nonce is missing or short") }
    self.input = input
    self.key = AgeFormat.payloadKey(fileKey: fileKey, nonce: nonce)
    self.payloadStart = Int64(header.length + AgeFormat.nonceSize)
    self.cipherLength = input.size - payloadStart
    let s = Int64(AgeFormat.sealedChunkSize)
    chunkCount = cipherLength <= 0 ? 0 : (cipherLength + s - 1) / s
    lastChunkLength = chunkCount == 0 ? 0 : Int(cipherLength - (chunkCount - 1) * s)
    sealed = [UInt8](repeating: 0, count: AgeFormat.sealedChunkSize)
    storedBytesRead = bytesRead
  }

  /// The sealed bytes of chunk `index` (valid until the next call).
  func readSealed(_ index: Int64) throws -> ArraySlice<UInt8> {
    let length = index == chunkCount - 1 ? lastChunkLength : AgeFormat.sealedChunkSize
    let start = payloadStart + index * Int64(AgeFormat.sealedChunkSize)
    let n = try sealed.withUnsafeMutableBytes {
      try readFully(input, at: start, into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<length]))
    }
    if !(input is AgeMemoryInput) { storedBytesRead += Int64(n) }
    guard n == length else {
      throw AgeFailure.payload("the file ended early (was it changed while reading?)")
    }
    return sealed[0..<length]
  }

  func open(_ sealed: ArraySlice<UInt8>, index: Int64, last: Bool) -> Data? {
    let split = sealed.endIndex - AgeFormat.tagSize
    guard split >= sealed.startIndex,
      let nonce = try? ChaChaPoly.Nonce(data: streamNonce(counter: UInt64(index), last: last)),
      let box = try? ChaChaPoly.SealedBox(
        nonce: nonce, ciphertext: sealed[sealed.startIndex..<split], tag: sealed[split...])
    else { return nil }
    return try? ChaChaPoly.open(box, using: key)
  }

  /// Decrypts chunk `index`, which must be marked final exactly when it is the last chunk.
  func openStrict(_ index: Int64) throws -> Data {
    let last = index == chunkCount - 1
    guard let plain = open(try readSealed(index), index: index, last: last) else {
      throw AgeFailure.payload(
        last
          ? "the final chunk failed to authenticate (modified, truncated or not marked final)"
          : "chunk \(index) failed to authenticate (modified or truncated)")
    }
    return plain
  }
}

/// Reads until `buffer` is full or the input ends; returns the bytes read.
func readFully(_ input: RandomAccessInput, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer)
  throws
  -> Int
{
  var done = 0
  while done < buffer.count {
    let n = try input.read(
      at: offset + Int64(done), into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
    if n == 0 { break }
    done += n
  }
  return done
}

/// A `RandomAccessInput` over bytes in memory (a de-armored file).
final class AgeMemoryInput: RandomAccessInput {
  let bytes: [UInt8]
  init(_ bytes: [UInt8]) { self.bytes = bytes }
  var size: Int64 { Int64(bytes.count) }
  func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    guard offset < size else { return 0 }
    let n = min(buffer.count, bytes.count - Int(offset))
    bytes.withUnsafeBytes {
      buffer.baseAddress!.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: n)
    }
    return n
  }
}

/// The ASCII armor of age files (strict PEM: 64-column padded base64, nothing else).
enum AgeArmor {
  static let begin = Array("-----BEGIN AGE ENCRYPTED FILE-----".utf8)
  static let end = Array("-----END AGE ENCRYPTED FILE-----".utf8)
  static let maxWhitespace = 1024

  static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || (c >= 0x09 && c <= 0x0D) }

  /// True when the file starts, after optional whitespace, with "-----" (a binary age file starts
  /// with "age-"); the armor parser then says what is wrong with a malformed BEGIN line.
  static func looksArmored(_ input: RandomAccessInput, bytesRead: inout Int64) throws -> Bool {
    var head = [UInt8](repeating: 0, count: maxWhitespace + begin.count)
    let n = try head.withUnsafeMutableBytes { try readFully(input, at: 0, into: $0) }
    bytesRead += Int64(n)
    let text = head[0..<n].drop(while: isSpace)
    return text.starts(with: "-----".utf8)
  }

  /// Decodes a whole armored file.
  static func decode(_ input: RandomAccessInput, bytesRead: inout Int64) throws -> [UInt8] {
    var all = [UInt8](repeating: 0, count: Int(input.size))
    let n = try all.withUnsafeMutableBytes { try readFully(input, at: 0, into: $0) }
    bytesRead += Int64(n)
    return try decode(all[0..<n])
  }

  static func decode(_ text: ArraySlice<UInt8>) throws -> [UInt8] {
    var position = text.startIndex
    func nextLine() -> ArraySlice<UInt8>? {
      guard position < text.endIndex else { return nil }
      let nl = text[position...].firstIndex(of: 0x0A)
      var line = text[position..<(nl ?? text.endIndex)]
      position = nl.map { $0 + 1 } ?? text.endIndex
      if line.last == 0x0D { line = line.dropLast() }
      return line
    }
    var skipped = 0
    while true {
      guard let line = nextLine() else { throw AgeFailure.armor("there is no BEGIN line") }
      if line.allSatisfy(isSpace) {
        skipped += line.count + 1
        guard skipped <= maxWhitespace else { throw AgeFailure.armor("too much leading whitespace") }
        continue
      }
      guard line.elementsEqual(begin) else {
        throw AgeFailure.armor("the first line is not \"-----BEGIN AGE ENCRYPTED FILE-----\"")
      }
      break
    }
    var out: [UInt8] = []
    while true {
      guard let line = nextLine() else { throw AgeFailure.armor("there is no END line") }
      if line.elementsEqual(end) { break }
      guard line.count <= 64 else { throw AgeFailure.armor("a line is longer than 64 columns") }
      guard !line.isEmpty, let bytes = AgeBase64.decodePadded(line) else {
        throw AgeFailure.armor("a line is not canonical padded base64")
      }
      out += bytes
      if bytes.count < 48 {
        guard let endLine = nextLine(), endLine.elementsEqual(end) else {
          throw AgeFailure.armor("a short line is not followed by the END line")
        }
        break
      }
    }
    let rest = text[position...]
    guard rest.allSatisfy(isSpace) else { throw AgeFailure.armor("there is data after the END line") }
    guard rest.count <= maxWhitespace else { throw AgeFailure.armor("too much trailing whitespace") }
    return out
  }
}
