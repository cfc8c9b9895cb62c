import BackupModel
import CZstd

private func zstdDetail(_ code: Int) -> String { String(cString: ZSTD_getErrorName(code)) }

/// One zstd frame (with content checksum) per call, reusing one compression context.
final class ZstdCompressor: MemberCompressor {
  private let cctx: OpaquePointer
  private let scratch = ScratchBuffer(capacity: 64 * 1024)

  init(level: Int) throws {
    guard let cctx = ZSTD_createCCtx() else {
      throw BackupError(.failure, "zstd compression could not start: out of memory")
    }
    self.cctx = cctx
    for (parameter, value) in [
      (ZSTD_c_compressionLevel, Int32(level)), (ZSTD_c_checksumFlag, 1), (ZSTD_c_nbWorkers, 0),
    ] {
      let rc = ZSTD_CCtx_setParameter(cctx, parameter, value)
      if ZSTD_isError(rc) != 0 {
        throw BackupError(.failure, "zstd compression could not start: \(zstdDetail(rc))")
      }
    }
  }

  deinit { ZSTD_freeCCtx(cctx) }

  func compressMember(_ raw: UnsafeRawBufferPointer) throws -> [UInt8] {
    scratch.reserve(ZSTD_compressBound(raw.count))
    let rc = ZSTD_compress2(cctx, scratch.pointer, scratch.capacity, raw.baseAddress, raw.count)
    if ZSTD_isError(rc) != 0 {
      ZSTD_CCtx_reset(cctx, ZSTD_reset_session_only)
      throw BackupError(.failure, "zstd compression failed: \(zstdDetail(rc))")
    }
    return scratch.bytes(count: rc)
  }
}

/// Decodes concatenated zstd frames (skippable frames are skipped).
final class ZstdDecompressor: StreamDecompressor {
  private let dstream: OpaquePointer
  private let buffer = UnsafeMutableRawPointer.allocate(byteCount: decodeBufferSize, alignment: 16)
  /// The last return value of ZSTD_decompressStream: 0 when a frame is complete and fully flushed.
  private var pending = 0

  init() throws {
    guard let dstream = ZSTD_createDStream() else {
      // deinit does not run here (dstream is unset), so free the buffer by hand.
      buffer.deallocate()
      throw BackupError(.failure, "zstd decompression could not start: out of memory")
    }
    self.dstream = dstream
    let rc = ZSTD_initDStream(dstream)
    if ZSTD_isError(rc) != 0 {
      throw BackupError(.failure, "zstd decompression could not start: \(zstdDetail(rc))")
    }
  }

  deinit {
    ZSTD_freeDStream(dstream)
    buffer.deallocate()
  }

  func decompress(_ input: UnsafeRawBufferPointer, output: (UnsafeRawBufferPointer) throws -> Void) throws {
    guard let base = input.baseAddress, !input.isEmpty else { return }
    var inBuffer = ZSTD_inBuffer(src: base, size: input.count, pos: 0)
    while true {
      var outBuffer = ZSTD_outBuffer(dst: buffer, size: decodeBufferSize, pos: 0)
      let rc = ZSTD_decompressStream(dstream, &outBuffer, &inBuffer)
      if ZSTD_isError(rc) != 0 {
        ZSTD_DCtx_reset(dstream, ZSTD_reset_session_only)
        pending = 0
        throw BackupError(.corrupt, "zstd data is corrupt: \(zstdDetail(rc))")
      }
      pending = rc
      if outBuffer.pos > 0 { try output(UnsafeRawBufferPointer(start: buffer, count: outBuffer.pos)) }
      if inBuffer.pos == inBuffer.size && outBuffer.pos < outBuffer.size { break }
    }
  }

  func finish(output: (UnsafeRawBufferPointer) throws -> Void) throws {
    if pending != 0 {
      throw BackupError(.corrupt, "zstd data is corrupt: unexpected end of data (truncated)")
    }
  }
}
