import BackupModel
import CBZip2

private func bzip2Detail(_ code: Int32) -> String {
  switch code {
  case BZ_DATA_ERROR: return "data integrity error (CRC mismatch or invalid block)"
  case BZ_DATA_ERROR_MAGIC: return "not bzip2 data (bad magic)"
  case BZ_MEM_ERROR: return "out of memory"
  case BZ_PARAM_ERROR: return "invalid parameter"
  case BZ_SEQUENCE_ERROR: return "invalid call sequence"
  case BZ_CONFIG_ERROR: return "library misconfigured"
  default: return "bzip2 error \(code)"
  }
}

/// One bzip2 stream per call. libbz2 has no reset, so each member gets a fresh compression context.
final class BZip2Compressor: MemberCompressor {
  private let level: Int32
  private let strm: UnsafeMutablePointer<bz_stream>
  private let scratch = ScratchBuffer(capacity: 64 * 1024)

  init(level: Int) {
    self.level = Int32(level)
    strm = .allocate(capacity: 1)
    strm.initialize(to: bz_stream())
  }

  deinit {
    strm.deinitialize(count: 1)
    strm.deallocate()
  }

  func compressMember(_ raw: UnsafeRawBufferPointer) throws -> [UInt8] {
    strm.pointee = bz_stream()
    var rc = BZ2_bzCompressInit(strm, level, 0, 0)
    guard rc == BZ_OK else { throw BackupError(.failure, "bzip2 compression failed: \(bzip2Detail(rc))") }
    defer { BZ2_bzCompressEnd(strm) }
    // bzip2 output is at most 1% larger than the input plus 600 bytes.
    scratch.reserve(raw.count + raw.count / 100 + 1024)
    var consumed = 0
    var produced = 0
    while true {
      let chunk = min(raw.count - consumed, maxChunk)
      let last = consumed + chunk == raw.count
      strm.pointee.next_in = raw.baseAddress.map {
        UnsafeMutableRawPointer(mutating: $0 + consumed).assumingMemoryBound(to: CChar.self)
      }
      strm.pointee.avail_in = UInt32(chunk)
      repeat {
        if produced == scratch.capacity { scratch.reserve(scratch.capacity * 2, preserving: produced) }
        let room = min(scratch.capacity - produced, maxChunk)
        strm.pointee.next_out = (scratch.pointer + produced).assumingMemoryBound(to: CChar.self)
        strm.pointee.avail_out = UInt32(room)
        rc = BZ2_bzCompress(strm, last ? BZ_FINISH : BZ_RUN)
        produced += room - Int(strm.pointee.avail_out)
        if rc == BZ_STREAM_END { return scratch.bytes(count: produced) }
        guard rc == BZ_RUN_OK || rc == BZ_FINISH_OK else {
          throw BackupError(.failure, "bzip2 compression failed: \(bzip2Detail(rc))")
        }
      } while strm.pointee.avail_in > 0 || last
      consumed += chunk
    }
  }
}

/// Decodes concatenated bzip2 streams: a new decompression context per stream.
final class BZip2Decompressor: StreamDecompressor {
  private let strm: UnsafeMutablePointer<bz_stream>
  private let buffer = UnsafeMutableRawPointer.allocate(byteCount: decodeBufferSize, alignment: 16)
  /// Whether a stream has been started (context initialised) but its end has not been reached.
  private var inStream = false

  init() {
    strm = .allocate(capacity: 1)
    strm.initialize(to: bz_stream())
  }

  deinit {
    if inStream { BZ2_bzDecompressEnd(strm) }
    strm.deinitialize(count: 1)
    strm.deallocate()
    buffer.deallocate()
  }

  func decompress(_ input: UnsafeRawBufferPointer, output: (UnsafeRawBufferPointer) throws -> Void) throws {
    guard let base = input.baseAddress else { return }
    var consumed = 0
    while consumed < input.count {
      if !inStream {
        strm.pointee = bz_stream()
        let rc = BZ2_bzDecompressInit(strm, 0, 0)
        guard rc == BZ_OK else {
          throw BackupError(.failure, "bzip2 decompression could not start: \(bzip2Detail(rc))")
        }
        inStream = true
      }
      let chunk = min(input.count - consumed, maxChunk)
      strm.pointee.next_in = UnsafeMutableRawPointer(mutating: base + consumed).assumingMemoryBound(
        to: CChar.self)
      strm.pointee.avail_in = UInt32(chunk)
      while true {
        strm.pointee.next_out = buffer.assumingMemoryBound(to: CChar.self)
        strm.pointee.avail_out = UInt32(decodeBufferSize)
        let rc = BZ2_bzDecompress(strm)
        let produced = decodeBufferSize - Int(strm.pointee.avail_out)
        if produced > 0 { try output(UnsafeRawBufferPointer(start: buffer, count: produced)) }
        if rc == BZ_STREAM_END {
          BZ2_bzDecompressEnd(strm)
          inStream = false
          break
        }
        guard rc == BZ_OK else { throw corrupt(bzip2Detail(rc)) }
        if strm.pointee.avail_in == 0 && strm.pointee.avail_out > 0 { break }
      }
      consumed += chunk - Int(strm.pointee.avail_in)
    }
  }

  func finish(output: (UnsafeRawBufferPointer) throws -> Void) throws {
    if inStream { throw corrupt("unexpected end of data (truncated)") }
  }

  private func corrupt(_ detail: String) -> BackupError {
    if inStream {
      BZ2_bzDecompressEnd(strm)
      inStream = false
    }
    return BackupError(.corrupt, "bzip2 data is corrupt: \(detail)")
  }
}
