import BackupModel
import BackupStorage
import Crypto
import Foundation
import NIOCore

/// Amazon S3 (and S3-compatible stores) as a blob store. Store names become keys under
/// `cloudConfig.prefix`. Streamed puts go up as one PUT when they fit in one part, else as a
/// multipart upload of equal parts, `parallel` in flight, each retried alone by `partRetry`;
/// reads are ranged GETs. Wrap it in `RetryingStore` for the other calls.
public final class S3Store: BlobStore, @unchecked Sendable {
  let client: S3Client
  public let settings: S3Settings
  public let partRetry: RetryPolicy
  /// Objects per ListObjectsV2 page (S3's maximum is 1000; tests lower it to page more).
  public var listPageSize = 1000

  public init(settings: S3Settings, credentials: AWSCredentials, partRetry: RetryPolicy = RetryPolicy())
    throws
  {
    self.settings = settings
    self.partRetry = partRetry
    client = try S3Client(settings: settings, credentials: credentials)
  }

  public var location: String { client.location }

  /// The time requests are signed with (tests skew it to check the server's refusal).
  var clock: @Sendable () -> Date {
    get { client.clock }
    set { client.clock = newValue }
  }

  public func put(_ name: String) throws -> BlobUpload {
    try S3Upload(store: self, key: client.key(try Self.checkName(name)))
  }

  public func put(_ name: String, data: Data) throws {
    try putObject(key: client.key(try Self.checkName(name)), body: ByteBuffer(bytes: data))
  }

  public func open(_ name: String) throws -> RandomAccessInput {
    let key = client.key(try Self.checkName(name))
    guard let size = try headSize(key: key) else {
      throw BackupError(.notFound, "\(location)/\(name) does not exist")
    }
    return S3Input(client: client, key: key, size: size)
  }

  public func stat(_ name: String) throws -> Int64? {
    try headSize(key: client.key(try Self.checkName(name)))
  }

  public func list(prefix: String) throws -> [BlobInfo] {
    let base = settings.prefix.isEmpty ? "" : settings.prefix + "/"
    var out: [BlobInfo] = []
    var token: String?
    repeat {
      var query = [("list-type", "2"), ("prefix", base + prefix), ("max-keys", String(listPageSize))]
      if let token { query.append(("continuation-token", token)) }
      let r = try client.expectOK("list", .GET, key: nil, query: query)
      for item in XML.all("Contents", in: r.text) {
        guard let key = XML.first("Key", in: item), key.hasPrefix(base) else { continue }
        let name = String(key.dropFirst(base.count))
        // deeper keys belong to another prefix
        guard !name.isEmpty, !name.contains("/") else { continue }
        out.append(BlobInfo(name: name, size: Int64(XML.first("Size", in: item) ?? "") ?? 0))
      }
      token =
        XML.first("IsTruncated", in: r.text) == "true" ? XML.first("NextContinuationToken", in: r.text) : nil
    } while token != nil
    return out.sorted { $0.name < $1.name }
  }

  public func delete(_ name: String) throws {
    let key = client.key(try Self.checkName(name))
    let r = try client.send(.DELETE, key: key)
    guard (200..<300).contains(r.status) || r.status == 404 else {
      throw client.failure(r, action: "delete", key: key)
    }
  }

  /// Creates the bucket (tests and first-time setup); an existing bucket of ours is fine.
  public func createBucket() throws {
    let r = try client.send(.PUT, key: nil)
    guard (200..<300).contains(r.status) || XML.first("Code", in: r.text) == "BucketAlreadyOwnedByYou" else {
      throw client.failure(r, action: "create bucket", key: nil)
    }
  }

  /// A multipart upload that was started and neither completed nor aborted.
  public struct PendingUpload: Sendable {
    public var key: String
    public var uploadId: String
    public var initiated: Date?
  }

  /// Unfinished multipart uploads under the prefix (each holds parts that cost storage), every
  /// page of ListMultipartUploads. A page continues from NextKeyMarker and NextUploadIdMarker,
  /// each sent only when the server gave it (SeaweedFS pages by upload id alone, and lists
  /// nothing when also given a key-marker).
  public func pendingUploads() throws -> [PendingUpload] {
    let base = settings.prefix.isEmpty ? "" : settings.prefix + "/"
    var out: [PendingUpload] = []
    var marker: (key: String, uploadId: String)?
    repeat {
      var query = [("uploads", ""), ("prefix", base), ("max-uploads", String(listPageSize))]
      if let marker {
        if !marker.key.isEmpty { query.append(("key-marker", marker.key)) }
        if !marker.uploadId.isEmpty { query.append(("upload-id-marker", marker.uploadId)) }
      }
      let r = try client.expectOK("list multipart uploads", .GET, key: nil, query: query)
      out += XML.all("Upload", in: r.text).compactMap { u in
        guard let key = XML.first("Key", in: u), let id = XML.first("UploadId", in: u) else { return nil }
        let t = XML.first("Initiated", in: u)
        return PendingUpload(
          key: key, uploadId: id,
          initiated: t.flatMap { UTCStamp.parseExtended($0) })
      }
      let previous = marker
      marker = nil
      if XML.first("IsTruncated", in: r.text) == "true" {
        let next = (
          key: XML.first("NextKeyMarker", in: r.text) ?? "",
          uploadId: XML.first("NextUploadIdMarker", in: r.text) ?? ""
        )
        // a server that does not move on would page forever
        if next != ("", ""), previous.map({ $0 != next }) ?? true { marker = next }
      }
    } while marker != nil
    return out
  }

  /// Aborts a multipart upload so that none of its parts remain.
  public func abort(_ upload: PendingUpload) throws {
    let r = try client.send(.DELETE, key: upload.key, query: [("uploadId", upload.uploadId)])
    guard (200..<300).contains(r.status) || r.status == 404 else {
      throw client.failure(r, action: "abort multipart upload", key: upload.key)
    }
  }

  // MARK: object calls

  func headSize(key: String) throws -> Int64? {
    let r = try client.send(.HEAD, key: key)
    if r.status == 404 { return nil }
    guard r.status == 200 else { throw client.failure(r, action: "stat", key: key) }
    guard let n = r.header("content-length").flatMap({ Int64($0) }) else {
      throw BackupError(.storage, "S3 stat of \(key) returned no Content-Length")
    }
    return n
  }

  /// One PUT of a whole object, checked by the server (Content-MD5 or CRC-32) and its answer
  /// here (the ETag or the echoed CRC-32).
  func putObject(key: String, body: ByteBuffer) throws {
    let check = client.bodyCheck(body)
    let headers = client.objectHeaders.merging(check.headers) { $1 }
    let r = try client.expectOK("upload", .PUT, key: key, headers: headers, body: body, timeoutSeconds: 600)
    do {
      try client.checkUploaded(r, check, what: key)
    } catch {
      // stored but not confirmed (a store that ignores x-amz-checksum-crc32) or not what was
      // sent (an ETag that is not its MD5): not left looking written (a manifest would make a
      // backup look complete)
      _ = try? client.send(.DELETE, key: key)
      throw error
    }
  }

  static func checkName(_ name: String) throws -> String {
    guard !name.isEmpty, !name.contains("/"), name != ".", name != "..", !name.contains("\0") else {
      throw BackupError(.usage, "refusing object name \"\(name)\": names are single path components")
    }
    return name
  }
}

/// A streamed put to S3. Bytes collect into a part buffer; a full part is handed to a worker
/// and the writer goes on. A part buffer takes one of `parallel` slots from the moment the writer
/// starts filling it until S3 has acknowledged it, so the writer blocks while all are taken and
/// the upload's memory stays at partSize x parallel. If everything fits in one part it goes up as
/// one PUT.
final class S3Upload: BlobUpload, @unchecked Sendable {
  let store: S3Store
  let client: S3Client
  let key: String
  let partSize: Int
  /// The part being filled: a NIO buffer, so that it is sent as it is, without another copy.
  private var buffer: ByteBuffer
  private var uploadId: String?
  private var nextPart = 1
  private let slots: DispatchSemaphore
  /// Whether the writer holds a slot for the part it is filling.
  private var holdsSlot = false
  /// Buffers of parts S3 has (or that failed), for the next parts to fill.
  private var spare: [ByteBuffer] = []
  /// Part buffers allocated so far (tests check the bound).
  private(set) var partBuffersAllocated = 0
  private let group = DispatchGroup()
  private let lock = NSLock()
  /// What S3 acknowledged of each part: its ETag, and the MD5 or CRC-32 it was checked against.
  private var done: [Int: (etag: String, md5: [UInt8]?, crc32: String?)] = [:]
  private var failure: Error?
  private var state = State.open
  /// Bytes of the parts S3 has acknowledged (and of the whole object once finished).
  private let confirmed = Counter()
  var confirmedBytes: Int64 { confirmed.value }
  enum State { case open, finished, aborted }

  init(store: S3Store, key: String) throws {
    self.store = store
    client = store.client
    self.key = key
    partSize = max(store.settings.partSize, 1)
    slots = DispatchSemaphore(value: store.settings.parallel)
    buffer = ByteBuffer()
  }

  func write(_ bytes: UnsafeRawBufferPointer) throws {
    guard state == .open else { throw BackupError(.failure, "write to a closed upload of \(key)") }
    var rest = bytes
    while !rest.isEmpty {
      if !holdsSlot { try failing { try takeSlot() } }
      if buffer.capacity < partSize {
        buffer.reserveCapacity(partSize)
        partBuffersAllocated += 1
      }
      let take = min(rest.count, partSize - buffer.readableBytes)
      buffer.writeBytes(UnsafeRawBufferPointer(rebasing: rest[0..<take]))
      rest = UnsafeRawBufferPointer(rebasing: rest[take...])
      if buffer.readableBytes == partSize { try failing { try submitPart() } }
    }
  }

  func finish() throws {
    guard state == .open else { return }
    try failing {
      if uploadId == nil {
        try store.partRetry.run { try store.putObject(key: key, body: buffer) }
        confirmed.add(Int64(buffer.readableBytes))
        releaseSlot()
      } else {
        if buffer.readableBytes > 0 { try submitPart() }
        releaseSlot()
        group.wait()
        try checkFailure()
        try complete()
      }
    }
    buffer = ByteBuffer()
    lock.lock()
    spare = []
    lock.unlock()
    state = .finished
  }

  @discardableResult func abort() -> Bool {
    guard state == .open else { return abortedCleanly }
    state = .aborted
    buffer = ByteBuffer()
    releaseSlot()
    group.wait()
    if let id = uploadId {
      abortedCleanly = (try? RetryPolicy.brief.run { try store.abort(.init(key: key, uploadId: id)) }) != nil
    }
    return abortedCleanly
  }
  private var abortedCleanly = true

  /// Runs `body`; on any error aborts the upload (no orphaned parts) and rethrows.
  private func failing(_ body: () throws -> Void) throws {
    do {
      try body()
    } catch {
      abort()
      throw error
    }
  }

  /// Waits for a free part buffer slot; a failure seen while waiting stops the writer. The slot
  /// comes with a sent part's buffer when there is one: reusing its memory (about `parallel`
  /// buffers for the whole upload) spares the kernel faulting in and zeroing 16 MiB of fresh
  /// pages per part, which cost more CPU than the transfer.
  private func takeSlot() throws {
    slots.wait()
    holdsSlot = true
    try checkFailure()
    lock.lock()
    if !spare.isEmpty {
      buffer = spare.removeLast()
      buffer.clear()
    }
    lock.unlock()
  }

  private func recycle(_ body: inout ByteBuffer) {
    lock.lock()
    spare.append(body)
    lock.unlock()
    body = ByteBuffer()
  }

  private func releaseSlot() {
    if holdsSlot { slots.signal() }
    holdsSlot = false
  }

  private func checkFailure() throws {
    lock.lock()
    let f = failure
    lock.unlock()
    if let f { throw f }
  }

  private func submitPart() throws {
    try checkFailure()
    if uploadId == nil {
      let r = try store.partRetry.run {
        try client.expectOK(
          "start multipart upload", .POST, key: key, query: [("uploads", "")],
          headers: client.objectHeaders.merging(
            client.settings.checksum == .crc32 ? ["x-amz-checksum-algorithm": "CRC32"] : [:]
          ) { $1 })
      }
      guard let id = XML.first("UploadId", in: r.text) else {
        throw BackupError(.storage, "S3 started a multipart upload of \(key) without an UploadId")
      }
      uploadId = id
    }
    let number = nextPart
    guard number <= S3Settings.maxParts else {
      throw BackupError(
        .storage, "the upload of \(key) needs more than \(S3Settings.maxParts) parts",
        hint: "raise cloudConfig.partSizeMiB")
    }
    nextPart += 1
    let part = PartBuffer(buffer)
    buffer = ByteBuffer()
    // the writer's slot goes with the part to its worker, which frees it once S3 has the part
    precondition(holdsSlot, "a part submitted without its slot")
    holdsSlot = false
    group.enter()
    let id = uploadId!
    DispatchQueue.global().async { [self] in
      var body = part.take()
      defer {
        recycle(&body)
        slots.signal()
        group.leave()
      }
      do {
        let check = client.bodyCheck(body)
        let etag = try store.partRetry.run {
          let r = try client.expectOK(
            "upload of part \(number)", .PUT, key: key,
            query: [("partNumber", String(number)), ("uploadId", id)],
            headers: check.headers, body: body, timeoutSeconds: 600)
          try client.checkUploaded(r, check, what: "\(key) part \(number)")
          return r.header("etag") ?? ""
        }
        lock.lock()
        done[number] = (
          check.md5.map { "\"\(SigV4Signer.hex($0))\"" } ?? etag, check.md5,
          check.headers[S3Client.crc32Header]
        )
        lock.unlock()
        confirmed.add(Int64(body.readableBytes))
      } catch {
        lock.lock()
        if failure == nil { failure = error }
        lock.unlock()
      }
    }
  }

  private func complete() throws {
    let numbers = done.keys.sorted()
    let xml =
      "<CompleteMultipartUpload>"
      + numbers.map { (n: Int) -> String in
        let part = done[n]!
        let crc = part.crc32.map { "<ChecksumCRC32>\($0)</ChecksumCRC32>" } ?? ""
        return "<Part><PartNumber>\(n)</PartNumber><ETag>\(XML.escape(part.etag))</ETag>\(crc)</Part>"
      }
      .joined() + "</CompleteMultipartUpload>"
    let r = try store.partRetry.run {
      try client.expectOK(
        "completion of multipart upload", .POST, key: key, query: [("uploadId", uploadId!)],
        body: ByteBuffer(string: xml), timeoutSeconds: 600)
    }
    if numbers.allSatisfy({ done[$0]!.md5 != nil }) {
      // the multipart ETag is the MD5 of the parts' MD5s, then "-<count>"
      let combined = S3Client.md5(numbers.flatMap { done[$0]!.md5! })
      try client.checkETag(
        XML.first("ETag", in: r.text), expected: "\(SigV4Signer.hex(combined))-\(numbers.count)", what: key)
    } else if let got = XML.first("ChecksumCRC32", in: r.text), got.hasSuffix("-\(numbers.count)") {
      // a composite CRC-32: the CRC-32 of the parts' CRC-32s (big-endian bytes), then "-<count>"
      let parts = numbers.flatMap { Array(Data(base64Encoded: done[$0]!.crc32!) ?? Data()) }
      guard got == "\(parts.withUnsafeBytes { S3Client.crc32($0) })-\(numbers.count)" else {
        throw BackupError(.corrupt, "S3 completed \(key) with CRC-32 \(got), not that of its parts")
      }
    }
  }
}

/// Hands a part's buffer to its worker without a second reference, so that once sent it can be
/// refilled in place.
private final class PartBuffer: @unchecked Sendable {
  private var buffer: ByteBuffer?
  init(_ buffer: ByteBuffer) { self.buffer = buffer }
  func take() -> ByteBuffer {
    defer { buffer = nil }
    return buffer!
  }
}

/// Ranged reads of one object. Reads are served from a window fetched by one ranged GET; the
/// window starts at the size asked for and doubles while reads stay sequential (up to 8 MiB),
/// so a table-level restore fetches little beyond the table's own range. Once reads are
/// sequential at the full window, the next `readAhead` windows are requested at once, so the
/// transfer overlaps with whatever the reader does with the bytes (as `aws s3 cp` downloads
/// ranges in parallel); a jump drops them.
final class S3Input: RandomAccessInput {
  let client: S3Client
  let key: String
  let size: Int64
  /// The current window: the GET's body as received, read from without another copy.
  private var window = ByteBuffer()
  private var windowStart: Int64 = 0
  private var nextWindowSize = 0
  private var ahead: [(start: Int64, length: Int, answer: S3Client.Pending)] = []
  /// Windows read to their end, filled again by later GETs: fresh 8 MiB buffers cost a page
  /// fault and zeroing per 4 KiB (a quarter of a download's system time).
  private var spare: [ByteBuffer] = []
  /// GETs that were handed a spare window to fill (tests check that windows are reused).
  private(set) var refills = 0
  /// GETs whose range crossed a multiple of `maxWindow` (tests check there are none).
  private(set) var crossings = 0
  static let maxWindow = 8 * 1024 * 1024
  static let readAhead = 3

  init(client: S3Client, key: String, size: Int64) {
    self.client = client
    self.key = key
    self.size = size
  }

  func read(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
    guard let lent = try borrow(at: offset, limit: buffer.count), let from = lent.baseAddress else {
      return 0
    }
    buffer.baseAddress!.copyMemory(from: from, byteCount: lent.count)
    return lent.count
  }

  /// The window itself: valid until the next call, when the window may be refilled.
  func borrow(at offset: Int64, limit: Int) throws -> UnsafeRawBufferPointer? {
    guard offset < size, limit > 0 else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    try position(at: offset, want: limit)
    let from = Int(offset - windowStart)
    let n = min(limit, window.readableBytes - from)
    // the ByteBuffer's storage outlives the closure: nothing replaces `window` until the next call
    return window.withUnsafeReadableBytes { UnsafeRawBufferPointer(rebasing: $0[from..<(from + n)]) }
  }

  /// Makes the window hold `offset`: the read-ahead's next window when reads are sequential, else
  /// a GET of about `want` bytes.
  private func position(at offset: Int64, want: Int) throws {
    let windowEnd = windowStart + Int64(window.readableBytes)
    if !(offset >= windowStart && offset < windowEnd) {
      // sequential: grow the window; a jump starts small again
      let sequential = offset == windowEnd && window.readableBytes > 0
      nextWindowSize = sequential ? min(Self.maxWindow, nextWindowSize * 2) : want
      if let next = ahead.first, next.start == offset, sequential {
        ahead.removeFirst()
        try take(next.answer, start: offset, length: next.length)
      } else {
        ahead.removeAll()
        // windows end on multiples of maxWindow, so the read-ahead's ranges line up with how the
        // object was stored (multipart parts are multiples of 8 MiB: ours, the AWS CLI's): a range
        // across two stored chunks cost SeaweedFS 40% more CPU and internal traffic per byte
        let boundary = (offset / Int64(Self.maxWindow) + 1) * Int64(Self.maxWindow)
        let length = Int(min(Int64(max(nextWindowSize, want)), size - offset, boundary - offset))
        try take(try fetch(offset, length), start: offset, length: length)
      }
      if sequential && nextWindowSize == Self.maxWindow {
        var from = ahead.last.map { $0.start + Int64($0.length) } ?? windowStart + Int64(window.readableBytes)
        while ahead.count < Self.readAhead && from < size {
          let length = Int(min(Int64(Self.maxWindow), size - from))
          ahead.append((from, length, try fetch(from, length)))
          from += Int64(length)
        }
      }
    }
  }

  private func fetch(_ offset: Int64, _ length: Int) throws -> S3Client.Pending {
    let reused = spare.popLast()
    if reused != nil { refills += 1 }
    let slot = Int64(Self.maxWindow)
    if offset / slot != (offset + Int64(length) - 1) / slot { crossings += 1 }
    return try client.start(
      .GET, key: key, headers: ["range": "bytes=\(offset)-\(offset + Int64(length) - 1)"],
      timeoutSeconds: 600, recycling: reused)
  }

  /// Makes an answer the window; on failure the read-ahead goes too (a retry fetches anew).
  private func take(_ answer: S3Client.Pending, start offset: Int64, length: Int) throws {
    do {
      let r = try answer.wait()
      guard r.status == 206 || (r.status == 200 && offset == 0) else {
        throw client.failure(r, action: "download", key: key)
      }
      let count = r.bytes.readableBytes
      guard count >= min(length, 1) else {
        throw BackupError(.corrupt, "S3 returned \(count) bytes for \(length) at \(offset) of \(key)")
      }
      if window.capacity >= Self.maxWindow && spare.count <= Self.readAhead { spare.append(window) }
      window = r.bytes
      if count > length { window.moveWriterIndex(to: window.readerIndex + length) }
      windowStart = offset
    } catch {
      ahead.removeAll()
      window = ByteBuffer()
      throw error
    }
  }
}

extension S3Store: UnfinishedUploads {
  public func unfinishedUploads() throws -> [UnfinishedUpload] {
    let base = settings.prefix.isEmpty ? "" : settings.prefix + "/"
    // callers reach this store unwrapped (no RetryingStore): retry here
    return try partRetry.run { try pendingUploads() }.compactMap { u in
      guard u.key.hasPrefix(base) else { return nil }
      let name = String(u.key.dropFirst(base.count))
      return name.contains("/") ? nil : UnfinishedUpload(name: name, started: u.initiated, handle: u.uploadId)
    }
  }

  public func abortUpload(_ upload: UnfinishedUpload) throws {
    let pending = PendingUpload(key: client.key(try Self.checkName(upload.name)), uploadId: upload.handle)
    try partRetry.run { try abort(pending) }
  }
}
