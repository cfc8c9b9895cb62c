/// The few pieces of the POSIX tar (ustar + pax) format the csv backup format needs: headers
/// for regular files, padding, the end-of-archive marker, and reading headers back.
public enum Tar {
  public static let blockSize = 512

  /// The zero padding that follows `size` bytes of file data.
  public static func paddingCount(for size: Int64) -> Int {
    let rem = Int(size % Int64(blockSize))
    return rem == 0 ? 0 : blockSize - rem
  }

  /// Two zero blocks end an archive.
  public static var endOfArchive: [UInt8] { [UInt8](repeating: 0, count: 2 * blockSize) }

  /// The header block(s) for a regular file. Names longer than 100 bytes get a pax extended
  /// header (`path=` record) before the ustar block, as GNU and BSD tar read them.
  public static func header(name: String, size: Int64, mtime: Int64 = 0, mode: Int = 0o644) -> [UInt8] {
    let nameBytes = Array(name.utf8)
    var out = [UInt8]()
    var shortName = nameBytes
    if nameBytes.count > 100 {
      var record = Array(" path=".utf8) + nameBytes + [0x0A]
      // the record starts with its own total length in decimal
      var length = record.count + 1
      while String(length).utf8.count + record.count != length { length += 1 }
      record = Array(String(length).utf8) + record
      out += ustarBlock(
        name: Array("PaxHeader/entry".utf8), size: Int64(record.count), mtime: mtime, mode: mode,
        type: UInt8(ascii: "x"))
      out += record
      out += [UInt8](repeating: 0, count: paddingCount(for: Int64(record.count)))
      shortName = Array(nameBytes.prefix(100))
    }
    out += ustarBlock(name: shortName, size: size, mtime: mtime, mode: mode, type: UInt8(ascii: "0"))
    return out
  }

  private static func ustarBlock(name: [UInt8], size: Int64, mtime: Int64, mode: Int, type: UInt8) -> [UInt8]
  {
    var h = [UInt8](repeating: 0, count: blockSize)
    func put(_ bytes: [UInt8], at offset: Int) {
      for (i, b) in bytes.enumerated() { h[offset + i] = b }
    }
    func octal(_ value: Int64, width: Int) -> [UInt8] {
      let digits = String(value, radix: 8)
      let padded = String(repeating: "0", count: max(0, width - 1 - digits.count)) + digits
      return Array(padded.utf8) + [0]
    }
    put(name, at: 0)
    put(octal(Int64(mode), width: 8), at: 100)
    put(octal(0, width: 8), at: 108)  // uid
    put(octal(0, width: 8), at: 116)  // gid
    if size < 0o77777777777 {
      put(octal(size, width: 12), at: 124)
    } else {
      // base-256 (GNU) for files of 8 GiB and more
      h[124] = 0x80
      var v = size
      for i in stride(from: 135, through: 125, by: -1) {
        h[i] = UInt8(v & 0xFF)
        v >>= 8
      }
    }
    put(octal(mtime, width: 12), at: 136)
    h[156] = type
    put(Array("ustar".utf8) + [0], at: 257)
    put(Array("00".utf8), at: 263)
    // checksum: sum of all bytes with the checksum field read as spaces
    for i in 148..<156 { h[i] = 0x20 }
    let sum = h.reduce(0) { $0 + Int($1) }
    put(octal(Int64(sum), width: 7), at: 148)
    h[155] = 0x20
    return h
  }

  public struct Entry: Sendable, Equatable {
    public var name: String
    public var size: Int64
  }

  /// Reads the next regular-file header (after any pax header); nil at the end-of-archive
  /// marker. Throws `.corrupt` for anything that is not a valid header.
  public static func readHeader(from reader: InputReader) throws -> Entry? {
    var paxPath: String?
    while true {
      let block = try reader.readExactly(blockSize)
      if block.allSatisfy({ $0 == 0 }) { return nil }
      guard verifyChecksum(block) else { throw BackupError(.corrupt, "tar header checksum mismatch") }
      let size = try parseSize(block)
      let type = block[156]
      if type == UInt8(ascii: "x") {
        let data = try reader.readExactly(Int(size))
        try reader.skip(paddingCount(for: size))
        paxPath = parsePaxPath(data) ?? paxPath
        continue
      }
      guard type == UInt8(ascii: "0") || type == 0 else {
        throw BackupError(.corrupt, "unexpected tar entry type \(type)")
      }
      let rawName = block[0..<100].prefix { $0 != 0 }
      let name = paxPath ?? String(decoding: rawName, as: UTF8.self)
      return Entry(name: name, size: size)
    }
  }

  private static func verifyChecksum(_ block: [UInt8]) -> Bool {
    var copy = block
    for i in 148..<156 { copy[i] = 0x20 }
    let sum = copy.reduce(0) { $0 + Int($1) }
    let field = block[148..<156].prefix { $0 != 0 && $0 != 0x20 }
    return Int(String(decoding: field, as: UTF8.self), radix: 8) == sum
  }

  private static func parseSize(_ block: [UInt8]) throws -> Int64 {
    if block[124] & 0x80 != 0 {
      var v: Int64 = 0
      for i in 125...135 { v = (v << 8) | Int64(block[i]) }
      return v
    }
    let field = block[124..<136].filter { $0 != 0 && $0 != 0x20 }
    guard let v = Int64(String(decoding: field, as: UTF8.self), radix: 8) else {
      throw BackupError(.corrupt, "tar header has a bad size field")
    }
    return v
  }

  private static func parsePaxPath(_ data: [UInt8]) -> String? {
    var i = 0
    var path: String?
    while i < data.count {
      guard let space = data[i...].firstIndex(of: 0x20),
        let len = Int(String(decoding: data[i..<space], as: UTF8.self)), len > 0, i + len <= data.count
      else { break }
      let record = data[(space + 1)..<(i + len - 1)]
      if let eq = record.firstIndex(of: UInt8(ascii: "=")),
        String(decoding: record[record.startIndex..<eq], as: UTF8.self) == "path"
      {
        path = String(decoding: record[(eq + 1)...], as: UTF8.self)
      }
      i += len
    }
    return path
  }

  /// A file name for a table inside the archive: "/", "%", NUL and a leading "." are
  /// percent-encoded so every name stays one safe entry (docs/FORMAT.md).
  public static func entryName(forTable table: String, suffix: String) -> String {
    var out = ""
    for (i, scalar) in table.unicodeScalars.enumerated() {
      if scalar == "/" || scalar == "%" || scalar == "\\" || scalar.value < 0x20 || (i == 0 && scalar == ".")
      {
        for b in String(scalar).utf8 { out += "%" + String(format2(b)) }
      } else {
        out.unicodeScalars.append(scalar)
      }
    }
    return out + suffix
  }

  private static func format2(_ b: UInt8) -> String {
    let s = String(b, radix: 16, uppercase: true)
    return s.count == 1 ? "0" + s : s
  }
}
