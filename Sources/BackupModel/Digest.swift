import COpenSSLSHA
import CXXHash
import Dispatch

/// Incremental SHA-256 with a lowercase hex result (OpenSSL's libcrypto). Its state can be read
/// at any 64-byte block boundary (`midstateHex`) and a hash resumed from such a state
/// (`init(resumingAt:midstate:)`): the payload's SHA-256 checkpoints (docs/FORMAT.md) let one
/// pass over a backup's bytes give the file's SHA-256 and a check for any byte range.
public struct SHA256Digest: @unchecked Sendable {
  private var context = SHA256_CTX()
  /// Bytes hashed so far (counting those before a resumed state).
  public private(set) var position: Int64 = 0

  public init() { SHA256_Init(&context) }

  /// A hash that continues from `midstate` (a `midstateHex()` result) taken after the first
  /// `offset` bytes of a stream, `offset` a multiple of 64; nil for a malformed state.
  public init?(resumingAt offset: Int64, midstate: String) {
    guard offset >= 0, offset % 64 == 0, let words = Self.words(midstate) else { return nil }
    self.init(resumingAt: offset, words: words)
  }

  /// A hash that continues from the state words H0...H7 (as `stateWords`) taken after the first
  /// `offset` bytes of a stream, `offset` a multiple of 64.
  public init(resumingAt offset: Int64, words: [UInt32]) {
    precondition(offset >= 0 && offset % 64 == 0 && words.count == 8)
    SHA256_Init(&context)
    withUnsafeMutableBytes(of: &context.h) { h in
      for (i, w) in words.enumerated() { h.storeBytes(of: w, toByteOffset: i * 4, as: UInt32.self) }
    }
    let bits = UInt64(offset) &* 8
    context.Nl = UInt32(truncatingIfNeeded: bits)
    context.Nh = UInt32(truncatingIfNeeded: bits >> 32)
    position = offset
  }

  /// The state words H0...H7 after the last whole 64-byte block hashed so far.
  public var stateWords: [UInt32] {
    withUnsafeBytes(of: context.h) { h in (0..<8).map { h.load(fromByteOffset: $0 * 4, as: UInt32.self) } }
  }

  /// SHA-256's initial state words (FIPS 180-4, 5.3.3).
  public static let initialWords: [UInt32] = SHA256Digest().stateWords

  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
    SHA256_Update(&context, base, bytes.count)
    position += Int64(bytes.count)
  }

  public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

  public func finalizeHex() -> String {
    var copy = context
    var out = [UInt8](repeating: 0, count: 32)
    SHA256_Final(&out, &copy)
    return lowerHex(out)
  }

  /// The hash state (H0...H7, each big-endian, as 64 hex digits: the form of a digest) after the
  /// bytes so far; nil unless they end on a 64-byte block boundary.
  public func midstateHex() -> String? {
    position % 64 == 0 ? blockState().state : nil
  }

  /// The hash state after the last whole 64-byte block hashed so far, and that block's end
  /// (OpenSSL keeps the bytes of an unfinished block aside until it fills).
  public func blockState() -> (offset: Int64, state: String) {
    (position & ~63, Self.hex(words: stateWords))
  }

  /// State words as the manifest writes a state: each big-endian, 64 hex digits.
  public static func hex(words: [UInt32]) -> String {
    lowerHex(words.flatMap { w in withUnsafeBytes(of: w.bigEndian) { Array($0) } })
  }

  /// The state words of a manifest's state (64 hex digits), else nil.
  public static func words(_ hex: String) -> [UInt32]? {
    guard isHex(hex) else { return nil }
    let digits = Array(hex.utf8)
    return (0..<8).map { i in
      UInt32(String(decoding: digits[(i * 8)..<(i * 8 + 8)], as: UTF8.self), radix: 16)!
    }
  }

  public static func hex(of bytes: [UInt8]) -> String {
    var d = SHA256Digest()
    d.update(bytes)
    return d.finalizeHex()
  }

  /// Whether `s` has the form of `finalizeHex()`'s result: 64 lowercase hex digits.
  public static func isHex(_ s: String) -> Bool {
    s.utf8.count == 64 && s.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
  }
}

/// Bytes as lowercase hex digits, two per byte (digests, checksums, signatures).
public func lowerHex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
  let digits: StaticString = "0123456789abcdef"
  var out = [UInt8]()
  out.reserveCapacity(bytes.underestimatedCount * 2)
  for b in bytes {
    out.append(digits.utf8Start[Int(b >> 4)])
    out.append(digits.utf8Start[Int(b & 0x0F)])
  }
  return String(decoding: out, as: UTF8.self)
}

/// The per-table content checksum recorded at backup time and recomputed by `verify --test`.
/// It hashes every value of every row in scan order with its storage class, so it does not
/// depend on the text format of the backup. Encoding (documented in docs/FORMAT.md): per value
/// one tag byte (N null, I integer, R real, T text, B blob), then for I and R the 8 bytes
/// little-endian (R: the IEEE-754 bit pattern), for T and B a little-endian UInt64 length and
/// the bytes; per row a closing byte 0x0A. The hash is XXH3-128 (libxxhash): this checksum
/// proves a restore reproduced the rows, while the parts' SHA-256 guards against tampering, and
/// XXH3 costs a hundredth of SHA-256 on the thread that reads rows.
public struct ContentChecksum: Sendable {
  private let state = XXH3State()
  private var pending: [UInt8] = []
  private static let batch = 64 * 1024
  public private(set) var rows: Int64 = 0

  public init() {
    pending.reserveCapacity(ContentChecksum.batch + 64)
  }

  @inline(__always) private mutating func word(_ v: UInt64) {
    withUnsafeBytes(of: v.littleEndian) { pending.append(contentsOf: $0) }
  }

  @inline(__always) private mutating func flushIfFull() {
    if pending.count >= ContentChecksum.batch { flush() }
  }

  private mutating func flush() {
    guard !pending.isEmpty else { return }
    pending.withUnsafeBytes { state.update($0) }
    pending.removeAll(keepingCapacity: true)
  }

  private mutating func bytes(_ tag: UInt8, _ bytes: UnsafeRawBufferPointer) {
    pending.append(tag)
    word(UInt64(bytes.count))
    if bytes.count >= ContentChecksum.batch {
      flush()
      state.update(bytes)
    } else {
      pending.append(contentsOf: bytes)
      flushIfFull()
    }
  }

  public mutating func addNull() { pending.append(UInt8(ascii: "N")) }
  public mutating func addInteger(_ v: Int64) {
    pending.append(UInt8(ascii: "I"))
    word(UInt64(bitPattern: v))
  }
  public mutating func addReal(_ v: Double) {
    pending.append(UInt8(ascii: "R"))
    word(v.bitPattern)
  }
  public mutating func addText(_ raw: UnsafeRawBufferPointer) { bytes(UInt8(ascii: "T"), raw) }
  public mutating func addBlob(_ raw: UnsafeRawBufferPointer) { bytes(UInt8(ascii: "B"), raw) }
  public mutating func endRow() {
    pending.append(0x0A)
    rows += 1
    flushIfFull()
  }

  /// The hex digest (32 digits, XXH3-128 in its canonical big-endian form).
  public mutating func finalizeHex() -> String {
    flush()
    return state.digestHex()
  }
}

/// One-shot XXH3-128 (libxxhash) of a buffer, for per-row hashes.
public enum XXH128 {
  public static func hash(_ bytes: UnsafeRawBufferPointer) -> (low: UInt64, high: UInt64) {
    let h = XXH3_128bits(bytes.baseAddress, bytes.count)
    return (h.low64, h.high64)
  }
}

/// An XXH3-128 streaming state owned by one checksum.
final class XXH3State: @unchecked Sendable {
  private let state: OpaquePointer

  init() {
    state = XXH3_createState()
    XXH3_128bits_reset(state)
  }

  deinit { XXH3_freeState(state) }

  func update(_ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return }
    _ = XXH3_128bits_update(state, base, bytes.count)
  }

  func digestHex() -> String {
    var canonical = XXH128_canonical_t()
    XXH128_canonicalFromHash(&canonical, XXH3_128bits_digest(state))
    return withUnsafeBytes(of: &canonical.digest) { lowerHex($0) }
  }
}

/// What a `HashLane` feeds, on the lane's thread.
public protocol HashSink: AnyObject, Sendable {
  func consume(_ bytes: UnsafeRawBufferPointer)
}

/// A SHA-256 state shared with a `HashLane`'s thread.
public final class DigestBox: HashSink, @unchecked Sendable {
  public var digest = SHA256Digest()
  public init() {}
  public func consume(_ bytes: UnsafeRawBufferPointer) { digest.update(bytes) }
  public func finalizeHex() -> String { digest.finalizeHex() }
}

/// Hashes buffers on one background thread in submission order. At most `depth` buffers wait,
/// so a slow hash slows the producer instead of holding memory.
public final class HashLane: @unchecked Sendable {
  private let queue: DispatchQueue
  private let slots: DispatchSemaphore

  public init(label: String, depth: Int = 2) {
    queue = DispatchQueue(label: label)
    slots = DispatchSemaphore(value: depth)
  }

  public func update(_ sink: HashSink, with bytes: [UInt8]) {
    slots.wait()
    queue.async { [slots] in
      bytes.withUnsafeBytes { sink.consume($0) }
      slots.signal()
    }
  }

  /// Runs `work` on the lane after everything submitted before it.
  public func perform(_ work: @escaping @Sendable () -> Void) { queue.async(execute: work) }

  /// Returns when every submitted buffer is hashed.
  public func wait() { queue.sync {} }
}
