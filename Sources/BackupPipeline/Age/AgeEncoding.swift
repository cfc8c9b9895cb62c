/// Base64 and Bech32 as the age format uses them: standard alphabet, canonical encodings only.
enum AgeBase64 {
  private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
  private static let values: [UInt8] = {
    var table = [UInt8](repeating: 0xFF, count: 256)
    for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
    return table
  }()

  /// Unpadded standard base64 (the header's encoding).
  static func encode<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
    var out: [UInt8] = []
    out.reserveCapacity((bytes.count * 4 + 2) / 3)
    var it = bytes.makeIterator()
    while let b0 = it.next() {
      let b1 = it.next()
      let b2 = it.next()
      out.append(alphabet[Int(b0 >> 2)])
      out.append(alphabet[Int((b0 & 0x03) << 4 | (b1 ?? 0) >> 4)])
      guard let b1 else { break }
      out.append(alphabet[Int((b1 & 0x0F) << 2 | (b2 ?? 0) >> 6)])
      guard let b2 else { break }
      out.append(alphabet[Int(b2 & 0x3F)])
    }
    return out
  }

  static func encodeString<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    String(decoding: encode(bytes), as: UTF8.self)
  }

  /// Decodes unpadded base64, rejecting padding, any character outside the alphabet and
  /// non-canonical encodings (unused trailing bits set). Nil when invalid.
  static func decode<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
    let chars = Array(text)
    if chars.count % 4 == 1 { return nil }
    var out: [UInt8] = []
    out.reserveCapacity(chars.count * 3 / 4)
    var acc: UInt32 = 0
    var bits = 0
    for c in chars {
      let v = values[Int(c)]
      if v == 0xFF { return nil }
      acc = acc << 6 | UInt32(v)
      bits += 6
      if bits >= 8 {
        bits -= 8
        out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
        acc &= (1 << UInt32(bits)) - 1
      }
    }
    if acc != 0 { return nil }  // non-canonical: the unused low bits must be zero
    return out
  }

  /// Decodes padded base64 (the armor's encoding): length a multiple of 4, "=" only as the final
  /// one or two characters, canonical. Nil when invalid.
  static func decodePadded<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
    var chars = Array(text)
    if chars.count % 4 != 0 { return nil }
    var padding = 0
    while padding < 2, chars.last == UInt8(ascii: "=") {
      chars.removeLast()
      padding += 1
    }
    if padding > 0 && chars.count % 4 != 4 - padding { return nil }
    return decode(chars)
  }
}

/// Bech32 (BIP 173 checksum, without the 90-character limit), as used by age keys.
enum Bech32 {
  private static let charset = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l".utf8)
  private static let values: [Int8] = {
    var table = [Int8](repeating: -1, count: 128)
    for (i, c) in charset.enumerated() { table[Int(c)] = Int8(i) }
    return table
  }()

  private static func polymod(_ values: [UInt8]) -> UInt32 {
    let generator: [UInt32] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3]
    var chk: UInt32 = 1
    for v in values {
      let top = chk >> 25
      chk = (chk & 0x1ff_ffff) << 5 ^ UInt32(v)
      for i in 0..<5 where (top >> UInt32(i)) & 1 == 1 { chk ^= generator[i] }
    }
    return chk
  }

  private static func expand(_ hrp: [UInt8]) -> [UInt8] {
    hrp.map { $0 >> 5 } + [0] + hrp.map { $0 & 31 }
  }

  private static func convertBits(_ data: [UInt8], from: Int, to: Int, pad: Bool) -> [UInt8]? {
    var acc = 0
    var bits = 0
    var out: [UInt8] = []
    let maxValue = (1 << to) - 1
    for value in data {
      acc = (acc << from) | Int(value)
      bits += from
      while bits >= to {
        bits -= to
        out.append(UInt8((acc >> bits) & maxValue))
      }
      acc &= (1 << bits) - 1
    }
    if pad {
      if bits > 0 { out.append(UInt8((acc << (to - bits)) & maxValue)) }
    } else if bits >= from || acc != 0 {
      return nil
    }
    return out
  }

  /// Encodes bytes with a lowercase human-readable part; the result is lowercase.
  static func encode(hrp: String, bytes: [UInt8]) -> String {
    let hrpBytes = Array(hrp.lowercased().utf8)
    let data = convertBits(bytes, from: 8, to: 5, pad: true)!
    let mod = polymod(expand(hrpBytes) + data + [0, 0, 0, 0, 0, 0]) ^ 1
    var out = hrpBytes
    out.append(UInt8(ascii: "1"))
    for v in data { out.append(charset[Int(v)]) }
    for i in 0..<6 { out.append(charset[Int((mod >> UInt32(5 * (5 - i))) & 31)]) }
    return String(decoding: out, as: UTF8.self)
  }

  enum DecodeError: Error { case mixedCase, invalidCharacter, noSeparator, badChecksum, badPadding }

  /// Decodes a Bech32 string (all lowercase or all uppercase). Returns the lowercased
  /// human-readable part and the data bytes.
  static func decode(_ text: String) throws(DecodeError) -> (hrp: String, bytes: [UInt8]) {
    let raw = Array(text.utf8)
    var hasLower = false
    var hasUpper = false
    for c in raw {
      guard c >= 33 && c <= 126 else { throw .invalidCharacter }
      if c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z") { hasLower = true }
      if c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") { hasUpper = true }
    }
    if hasLower && hasUpper { throw .mixedCase }
    let lower = raw.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 + 32 : $0 }
    guard let sep = lower.lastIndex(of: UInt8(ascii: "1")), sep >= 1, sep + 7 <= lower.count else {
      throw .noSeparator
    }
    let hrp = Array(lower[..<sep])
    var data: [UInt8] = []
    for c in lower[(sep + 1)...] {
      guard c < 128, values[Int(c)] >= 0 else { throw .invalidCharacter }
      data.append(UInt8(values[Int(c)]))
    }
    guard polymod(expand(hrp) + data) == 1 else { throw .badChecksum }
    guard let bytes = convertBits(Array(data.dropLast(6)), from: 5, to: 8, pad: false) else {
      throw .badPadding
    }
    return (String(decoding: hrp, as: UTF8.self), bytes)
  }
}
