import BackupModel
import CDeflate
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

/// One gzip member per call, compressed by libdeflate: members are whole buffers, which is the
/// case libdeflate is made for (about twice zlib's speed at the same level and ratio). Decoding
/// stays on zlib, which streams and handles any gzip file.
final class GzipCompressor: MemberCompressor {
  private let compressor: OpaquePointer
  private let scratch = ScratchBuffer(capacity: 64 * 1024)

  init(level: Int) throws {
    guard let c = libdeflate_alloc_compressor(Int32(level)) else {
      throw BackupError(.failure, "gzip compression could not start (libdeflate level \(level))")
    }
    compressor = c
  }

  deinit { libdeflate_free_compressor(compressor) }

  func compressMember(_ raw: UnsafeRawBufferPointer) throws -> [UInt8] {
    let bound = libdeflate_gzip_compress_bound(compressor, raw.count)
    scratch.reserve(bound)
    let n = libdeflate_gzip_compress(compressor, raw.baseAddress, raw.count, scratch.pointer, bound)
    guard n > 0 else { throw BackupError(.failure, "gzip compression failed (output larger than its bound)") }
    return scratch.bytes(count: n)
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
