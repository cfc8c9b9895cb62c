import BackupModel
import CZlib

private func zlibDetail(_ strm: UnsafeMutablePointer<z_stream>, _ code: Int32) -> String {
  if let msg = strm.pointee.msg { return String(cString: msg) }
  switch code {
  case Z_DATA_ERROR: return "invalid compressed data"
  case Z_MEM_ERROR: return "out of memory"
  case Z_BUF_ERROR: return "no progress possible"
  case Z_STREAM_ERROR: return "inconsistent stream state"
  case Z_NEED_DICT: return "a preset dictionary is required"
  case Z_VERSION_ERROR: return "incompatible zlib version"
  default: return "zlib error \(code)"
  }
}

/// One gzip member per call, with a deflate context reset (not re-created) between calls.
final class GzipCompressor: MemberCompressor {
  private let strm: UnsafeMutablePointer<z_stream>
  private let scratch = ScratchBuffer(capacity: 64 * 1024)

  init(level: Int) throws {
    strm = .allocate(capacity: 1)
    strm.initialize(to: z_stream())
    let rc = deflateInit2_(
      strm, Int32(level), Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
      Int32(MemoryLayout<z_stream>.size))
    // On a throw here deinit still runs (every stored property is set); deflateEnd is then a no-op.
    guard rc == Z_OK else {
      throw BackupError(.failure, "gzip compression could not start: \(zlibDetail(strm, rc))")
    }
  }

  deinit {
    deflateEnd(strm)
    strm.deinitialize(count: 1)
    strm.deallocate()
  }

  func compressMember(_ raw: UnsafeRawBufferPointer) throws -> [UInt8] {
    var rc = deflateReset(strm)
    guard rc == Z_OK else { throw BackupError(.failure, "gzip compression failed: \(zlibDetail(strm, rc))") }
    scratch.reserve(Int(deflateBound(strm, uLong(raw.count))))
    var consumed = 0
    var produced = 0
    while true {
      let chunk = min(raw.count - consumed, maxChunk)
      let last = consumed + chunk == raw.count
      strm.pointee.next_in =
        raw.baseAddress.map {
          UnsafeMutablePointer(mutating: ($0 + consumed).assumingMemoryBound(to: Bytef.self))
        }
      strm.pointee.avail_in = uInt(chunk)
      repeat {
        if produced == scratch.capacity { scratch.reserve(scratch.capacity * 2, preserving: produced) }
        let room = min(scratch.capacity - produced, maxChunk)
        strm.pointee.next_out = (scratch.pointer + produced).assumingMemoryBound(to: Bytef.self)
        strm.pointee.avail_out = uInt(room)
        rc = deflate(strm, last ? Z_FINISH : Z_NO_FLUSH)
        produced += room - Int(strm.pointee.avail_out)
        if rc == Z_STREAM_END { return scratch.bytes(count: produced) }
        guard rc == Z_OK || rc == Z_BUF_ERROR else {
          throw BackupError(.failure, "gzip compression failed: \(zlibDetail(strm, rc))")
        }
      } while strm.pointee.avail_in > 0 || strm.pointee.avail_out == 0 || last
      consumed += chunk
    }
  }
}

/// Decodes concatenated gzip members: after each member end the inflate context is reset.
final class GzipDecompressor: StreamDecompressor {
  private let strm: UnsafeMutablePointer<z_stream>
  private let buffer = UnsafeMutableRawPointer.allocate(byteCount: decodeBufferSize, alignment: 16)
  /// Whether bytes of a member have been consumed but its end has not been reached.
  private var inMember = false

  init() throws {
    strm = .allocate(capacity: 1)
    strm.initialize(to: z_stream())
    // 15 + 16: gzip wrapper only (a zlib or raw stream is not a .gz file).
    let rc = inflateInit2_(strm, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
    // On a throw here deinit still runs (every stored property is set); inflateEnd is then a no-op.
    guard rc == Z_OK else {
      throw BackupError(.failure, "gzip decompression could not start: \(zlibDetail(strm, rc))")
    }
  }

  deinit {
    inflateEnd(strm)
    strm.deinitialize(count: 1)
    strm.deallocate()
    buffer.deallocate()
  }

  func decompress(_ input: UnsafeRawBufferPointer, output: (UnsafeRawBufferPointer) throws -> Void) throws {
    guard let base = input.baseAddress else { return }
    var consumed = 0
    while consumed < input.count {
      if !inMember {
        let rc = inflateReset(strm)
        guard rc == Z_OK else { throw corrupt(zlibDetail(strm, rc)) }
        inMember = true
      }
      let chunk = min(input.count - consumed, maxChunk)
      strm.pointee.next_in = UnsafeMutablePointer(
        mutating: (base + consumed).assumingMemoryBound(to: Bytef.self))
      strm.pointee.avail_in = uInt(chunk)
      while true {
        strm.pointee.next_out = buffer.assumingMemoryBound(to: Bytef.self)
        strm.pointee.avail_out = uInt(decodeBufferSize)
        let rc = inflate(strm, Z_NO_FLUSH)
        let produced = decodeBufferSize - Int(strm.pointee.avail_out)
        if produced > 0 { try output(UnsafeRawBufferPointer(start: buffer, count: produced)) }
        if rc == Z_STREAM_END {
          inMember = false
          break
        }
        guard rc == Z_OK || (rc == Z_BUF_ERROR && strm.pointee.avail_in == 0) else {
          throw corrupt(rc == Z_NEED_DICT ? "a preset dictionary is required" : zlibDetail(strm, rc))
        }
        if strm.pointee.avail_in == 0 && strm.pointee.avail_out > 0 { break }
      }
      consumed += chunk - Int(strm.pointee.avail_in)
    }
  }

  func finish(output: (UnsafeRawBufferPointer) throws -> Void) throws {
    if inMember { throw corrupt("unexpected end of data (truncated)") }
  }

  private func corrupt(_ detail: String) -> BackupError {
    inMember = false
    return BackupError(.corrupt, "gzip data is corrupt: \(detail)")
  }
}
