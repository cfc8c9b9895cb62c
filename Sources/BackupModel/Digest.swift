import Crypto

/// Incremental SHA-256 with a lowercase hex result.
public struct SHA256Digest: Sendable {
  private var hasher = SHA256()

  public init() {}

  public mutating func update(_ bytes: UnsafeRawBufferPointer) { hasher.update(bufferPointer: bytes) }

  public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) } }

  public func finalizeHex() -> String {
    hasher.finalize().map { hex2($0) }.joined()
  }

  public static func hex(of bytes: [UInt8]) -> String {
    var d = SHA256Digest()
    d.update(bytes)
    return d.finalizeHex()
  }
}

@inline(__always) func hex2(_ b: UInt8) -> String {
  let digits: [Character] = Array("0123456789abcdef")
  return String([digits[Int(b >> 4)], digits[Int(b & 0xF)]])
}

/// The per-table content checksum recorded at backup time and recomputed by `verify --test`.
/// It hashes every value of every row in scan order with its storage class, so it does not
/// depend on the text format of the backup. Encoding (documented in docs/FORMAT.md): per value
/// one tag byte (N null, I integer, R real, T text, B blob), then for I and R the 8 bytes
/// little-endian (R: the IEEE-754 bit pattern), for T and B a little-endian UInt64 length and
/// the bytes; per row a closing byte 0x0A.
public struct ContentChecksum: Sendable {
  private var hasher = SHA256()
  public private(set) var rows: Int64 = 0

  public init() {}

  @inline(__always) private mutating func tag(_ t: Character) {
    var b = t.asciiValue!
    withUnsafeBytes(of: &b) { hasher.update(bufferPointer: $0) }
  }

  @inline(__always) private mutating func word(_ v: UInt64) {
    var le = v.littleEndian
    withUnsafeBytes(of: &le) { hasher.update(bufferPointer: $0) }
  }

  public mutating func addNull() { tag("N") }
  public mutating func addInteger(_ v: Int64) {
    tag("I")
    word(UInt64(bitPattern: v))
  }
  public mutating func addReal(_ v: Double) {
    tag("R")
    word(v.bitPattern)
  }
  public mutating func addText(_ bytes: UnsafeRawBufferPointer) {
    tag("T")
    word(UInt64(bytes.count))
    hasher.update(bufferPointer: bytes)
  }
  public mutating func addBlob(_ bytes: UnsafeRawBufferPointer) {
    tag("B")
    word(UInt64(bytes.count))
    hasher.update(bufferPointer: bytes)
  }
  public mutating func endRow() {
    tag("\n")
    rows += 1
  }

  public func finalizeHex() -> String {
    hasher.finalize().map { hex2($0) }.joined()
  }
}
