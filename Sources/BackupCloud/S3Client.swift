import AsyncHTTPClient
import BackupModel
import BackupStorage
import CDeflate
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// How the server checks each upload body (`cloudConfig.checksum`): a signed Content-MD5, which
/// every S3-compatible store checks, or a signed `x-amz-checksum-crc32` (S3's additional
/// checksums: AWS S3, MinIO and SeaweedFS check it, some stores refuse or ignore it), which costs
/// a small fraction of MD5's CPU. Either way the payload itself is not hashed for the signature.
public enum S3Checksum: String, Sendable, CaseIterable {
  case md5, crc32
}

/// Where and how to store objects in S3 or an S3-compatible store (`cloudConfig.*`).
public struct S3Settings: Sendable {
  public var bucket: String
  public var region: String
  /// Key prefix without leading or trailing slashes; may contain spaces and inner slashes.
  public var prefix: String
  /// nil: AWS (`https://s3.<region>.amazonaws.com`); else e.g. `http://127.0.0.1:9000`.
  public var endpoint: String?
  /// Path-style addressing (`host/bucket/key`); nil: on for a custom endpoint, off for AWS.
  public var forcePathStyle: Bool?
  public var storageClass: String?
  /// `AES256` or `aws:kms`.
  public var serverSideEncryption: String?
  public var kmsKeyId: String?
  public var partSize: Int
  public var parallel: Int
  public var checksum: S3Checksum

  public static let minPartSize = 5 * 1024 * 1024
  public static let maxParts = 10_000

  public init(
    bucket: String, region: String = "us-east-1", prefix: String = "", endpoint: String? = nil,
    forcePathStyle: Bool? = nil, storageClass: String? = nil, serverSideEncryption: String? = nil,
    kmsKeyId: String? = nil, partSize: Int = 16 * 1024 * 1024, parallel: Int = 5, checksum: S3Checksum = .md5
  ) {
    self.checksum = checksum
    self.bucket = bucket
    self.region = region
    self.prefix = prefix.split(separator: "/", omittingEmptySubsequences: true).joined(separator: "/")
    self.endpoint = endpoint
    self.forcePathStyle = forcePathStyle
    self.storageClass = storageClass
    self.serverSideEncryption = serverSideEncryption
    self.kmsKeyId = kmsKeyId
    self.partSize = partSize
    self.parallel = max(1, parallel)
  }
}

/// Collects a response's body into one buffer sized from its Content-Length, so each byte of a
/// ranged GET is copied once as it arrives. (async-http-client's `ResponseAccumulator` grows its
/// buffer by doubling: for an 8 MiB download window, about two more copies of every byte and
/// fresh pages for every size.)
final class BodyCollector: HTTPClientResponseDelegate, @unchecked Sendable {
  typealias Response = HTTPClient.Response
  /// What one buffer is sized for at most up front (ranged GETs ask for at most 8 MiB).
  static let largestPresize = 64 << 20
  private let host: String
  private var head: HTTPResponseHead?
  private var body: ByteBuffer?
  /// A buffer to fill instead of a new one (a download window the reader is done with).
  private var recycled: ByteBuffer?

  init(host: String, recycling buffer: ByteBuffer? = nil) {
    self.host = host
    recycled = buffer
  }

  func didReceiveHead(task: HTTPClient.Task<Response>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
    self.head = head
    return task.eventLoop.makeSucceededVoidFuture()
  }

  func didReceiveBodyPart(task: HTTPClient.Task<Response>, _ part: ByteBuffer) -> EventLoopFuture<Void> {
    var part = part
    if body == nil {
      let declared = head?.headers.first(name: "content-length").flatMap { Int($0) } ?? 0
      let size = max(part.readableBytes, min(declared, Self.largestPresize))
      if var reused = recycled.take(), reused.capacity >= size {
        reused.clear()
        body = reused
      } else {
        body = ByteBufferAllocator().buffer(capacity: size)
      }
    }
    body!.writeBuffer(&part)
    return task.eventLoop.makeSucceededVoidFuture()
  }

  func didFinishRequest(task: HTTPClient.Task<Response>) throws -> Response {
    guard let head else { throw HTTPClientError.remoteConnectionClosed }
    return HTTPClient.Response(
      host: host, status: head.status, version: head.version, headers: head.headers, body: body)
  }
}

/// One answer from S3, body read whole (requests that can return much ask for bounded ranges).
struct S3Response {
  var status: Int
  var headers: HTTPHeaders
  /// The body as async-http-client collected it (downloads use it without a copy).
  var bytes: ByteBuffer
  /// The time the request was signed with (for RequestTimeTooSkewed).
  var signedAt = Date()
  func header(_ name: String) -> String? { headers.first(name: name) }
  var text: String { String(buffer: bytes) }
}

/// The HTTP half of the S3 backend: addressing, signing, sending, and turning failures into one
/// clear line (transient ones wrapped for the retry policy).
final class S3Client: @unchecked Sendable {
  let settings: S3Settings
  let signer: SigV4Signer
  let scheme: String
  /// host[:port] as sent in the Host header.
  let host: String
  /// `/bucket` for path-style addressing, "" for virtual-hosted.
  let bucketPath: String
  /// The time requests are signed with (tests skew it; users never set it).
  var clock: @Sendable () -> Date = { Date() }

  /// One client for the process, on NIO's shared event loops: requests run there while the
  /// synchronous pipeline waits for their futures.
  static let http = makeHTTPClient(redirects: .disallow, readTimeout: .seconds(120))

  init(settings: S3Settings, credentials: AWSCredentials) throws {
    self.settings = settings
    signer = SigV4Signer(credentials: credentials, region: settings.region)
    let endpoint = settings.endpoint ?? "https://s3.\(settings.region).amazonaws.com"
    guard let url = URL(string: endpoint), let scheme = url.scheme, ["http", "https"].contains(scheme),
      let h = url.host, !h.isEmpty
    else {
      throw BackupError(
        .usage, "cloudConfig.endpoint \"\(endpoint)\" is not an http(s) URL",
        hint: "for example https://s3.eu-west-1.amazonaws.com or http://127.0.0.1:9000")
    }
    self.scheme = scheme
    let pathStyle = settings.forcePathStyle ?? (settings.endpoint != nil)
    let port = url.port.map { ":\($0)" } ?? ""
    host = pathStyle ? "\(h)\(port)" : "\(settings.bucket).\(h)\(port)"
    bucketPath = pathStyle ? "/\(settings.bucket)" : ""
  }

  var location: String {
    "s3://\(settings.bucket)" + (settings.prefix.isEmpty ? "" : "/\(settings.prefix)")
  }

  /// The object key of a store name.
  func key(_ name: String) -> String { settings.prefix.isEmpty ? name : "\(settings.prefix)/\(name)" }

  /// Sends one request and waits for the whole answer. `key` nil addresses the bucket.
  func send(
    _ method: HTTPMethod, key: String?, query: [(String, String)] = [], headers: [String: String] = [:],
    body: ByteBuffer? = nil, timeoutSeconds: Int64 = 120
  ) throws -> S3Response {
    try start(method, key: key, query: query, headers: headers, body: body, timeoutSeconds: timeoutSeconds)
      .wait()
  }

  /// A request on its way; `wait` gives its answer (or the transport failure, as transient).
  struct Pending {
    let future: EventLoopFuture<HTTPClient.Response>
    let signedAt: Date
    let failure: (Error) -> Error

    func wait() throws -> S3Response {
      let response: HTTPClient.Response
      do {
        response = try future.wait()
      } catch {
        throw failure(error)
      }
      return S3Response(
        status: Int(response.status.code), headers: response.headers,
        bytes: response.body ?? ByteBuffer(), signedAt: signedAt)
    }
  }

  /// A presigned URL for one object: anyone holding it may `method` the object until it
  /// expires, without credentials (SigV4 query signing; `expires` at most 7 days, as S3 allows).
  func presignedURL(_ method: HTTPMethod, key: String, expires: Int, date: Date? = nil) -> String {
    let path = bucketPath + "/" + SigV4Signer.encodePath(key)
    let query = signer.presign(
      method: method.rawValue, path: path, host: host, expires: min(max(1, expires), 7 * 24 * 3600),
      date: date ?? clock())
    // the signature last, as AWS writes them
    return "\(scheme)://\(host)\(path)?\(SigV4Signer.canonicalQuery(Array(query.dropLast())))"
      + "&X-Amz-Signature=\(query.last!.1)"
  }

  /// Signs and sends one request without waiting for it.
  func start(
    _ method: HTTPMethod, key: String?, query: [(String, String)] = [], headers: [String: String] = [:],
    body: ByteBuffer? = nil, timeoutSeconds: Int64 = 120, recycling buffer: ByteBuffer? = nil
  ) throws -> Pending {
    let path =
      key.map { bucketPath + "/" + SigV4Signer.encodePath($0) } ?? (bucketPath.isEmpty ? "/" : bucketPath)
    let queryText = SigV4Signer.canonicalQuery(query)
    let url = "\(scheme)://\(host)\(path)" + (queryText.isEmpty ? "" : "?\(queryText)")
    var all = headers
    all["host"] = host
    // A body with a Content-MD5 or x-amz-checksum-crc32 header (every object and part upload) is
    // checked by the server against it, and the header is signed, so the body need not be hashed
    // a second time with SHA-256 for the signature (as `aws s3 cp` does over HTTPS); other bodies
    // are signed.
    let payloadHash: String
    if let body {
      payloadHash =
        headers["content-md5"] != nil || headers[Self.crc32Header] != nil
        ? SigV4Signer.unsignedPayload
        : SigV4Signer.hex(Array(body.withUnsafeReadableBytes { SHA256.hash(data: $0) }))
    } else {
      payloadHash = SigV4Signer.emptyPayloadHash
    }
    let signedAt = clock()
    let auth = signer.sign(
      method: method.rawValue, path: path, query: query, headers: all, payloadHash: payloadHash,
      date: signedAt)
    var request: HTTPClient.Request
    do {
      request = try HTTPClient.Request(url: url, method: method, body: body.map { .byteBuffer($0) })
    } catch {
      throw BackupError(.usage, "cannot form an S3 request URL for \(location): \(error)")
    }
    for (k, v) in all.merging(auth, uniquingKeysWith: { $1 }) where k != "host" {
      request.headers.replaceOrAdd(name: k, value: v)
    }
    let target = "\(scheme)://\(host)"
    return Pending(
      future: Self.http.execute(
        request: request, delegate: BodyCollector(host: host, recycling: buffer),
        deadline: .now() + .seconds(timeoutSeconds)
      ).futureResult,
      signedAt: signedAt,
      failure: { error in
        TransientStorageError(
          BackupError(
            .storage,
            "cannot reach S3 at \(target) (\(method.rawValue) \(key ?? "bucket")): \(describeTransportError(error))",
            hint: "check cloudConfig.endpoint and the network"))
      })
  }

  /// A transport failure in a few words ("connection refused", "the server closed the connection").

  /// Sends and requires a 2xx answer (an S3 error document inside a 200 counts as a failure).
  @discardableResult
  func expectOK(
    _ action: String, _ method: HTTPMethod, key: String?, query: [(String, String)] = [],
    headers: [String: String] = [:], body: ByteBuffer? = nil, timeoutSeconds: Int64 = 120
  ) throws -> S3Response {
    let r = try send(
      method, key: key, query: query, headers: headers, body: body, timeoutSeconds: timeoutSeconds)
    guard (200..<300).contains(r.status), !(r.bytes.readableBytes < 4096 && r.text.contains("<Error>")) else {
      throw failure(r, action: action, key: key)
    }
    return r
  }

  /// The error a failed answer means: transient for 5xx/429/SlowDown, else one clear line that
  /// names the credential source (never the secret) when the request was refused.
  func failure(_ r: S3Response, action: String, key: String?) -> Error {
    var code = XML.first("Code", in: r.text) ?? "HTTP \(r.status)"
    if r.status == 403 && r.bytes.readableBytes == 0 {
      // answers to HEAD carry no error document: a refusal is either the clock (told by the
      // Date header, more than S3's 15 minutes off) or the credentials
      code = abs(skewSeconds(r) ?? 0) > 15 * 60 ? "RequestTimeTooSkewed" : "AccessDenied"
    }
    var message = XML.first("Message", in: r.text) ?? ""
    if message.count > 160 { message = String(message.prefix(160)) + "..." }
    let what = "S3 \(action) of \(key.map { "s3://\(settings.bucket)/\($0)" } ?? location)"
    let detail = message.isEmpty ? code : "\(code): \(message)"
    if r.status >= 500 || r.status == 429 || code == "SlowDown" || code == "InternalError" {
      return TransientStorageError(BackupError(.storage, "\(what) failed (HTTP \(r.status) \(detail))"))
    }
    switch code {
    case "SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "InvalidToken", "ExpiredToken":
      return BackupError(
        .storage, "\(what) was refused (\(detail))",
        hint: "check the AWS credentials (\(signer.credentials)) and their permissions")
    case "RequestTimeTooSkewed":
      return BackupError(
        .storage, "\(what) was refused (RequestTimeTooSkewed): \(clockSkew(r))",
        hint:
          "S3 accepts requests at most 15 minutes off its time; sync this machine's clock (NTP, e.g. `timedatectl set-ntp true`) and retry"
      )
    case "NoSuchBucket":
      return BackupError(
        .notFound, "S3 bucket \"\(settings.bucket)\" does not exist at \(scheme)://\(host)",
        hint: "create it, or fix cloudConfig.bucket / cloudConfig.endpoint / cloudConfig.region")
    case "NoSuchKey":
      return BackupError(.notFound, "\(what): no such object")
    default:
      return BackupError(.storage, "\(what) failed (HTTP \(r.status) \(detail))")
    }
  }

  /// How far this machine's clock is off the server's, in words, from the answer's Date header
  /// (or the error's ServerTime) against the time the request was signed with.
  func clockSkew(_ r: S3Response) -> String {
    guard let seconds = skewSeconds(r) else { return "this machine's clock is off the server's" }
    let amount =
      abs(seconds) >= 7200
      ? "\(abs(seconds) / 3600) hours"
      : abs(seconds) >= 120 ? "\(abs(seconds) / 60) minutes" : "\(abs(seconds)) seconds"
    return "this machine's clock is \(amount) \(seconds > 0 ? "ahead of" : "behind") the server's"
  }

  /// Seconds the signing time was ahead of the server's time (negative: behind), when the answer
  /// tells the server's time.
  func skewSeconds(_ r: S3Response) -> Int? {
    let http = DateFormatter()
    http.locale = Locale(identifier: "en_US_POSIX")
    http.timeZone = TimeZone(identifier: "GMT")
    http.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
    let server =
      r.header("date").flatMap { http.date(from: $0) }
      ?? XML.first("ServerTime", in: r.text).flatMap { UTCStamp.parseExtended($0) }
    return server.map { Int(r.signedAt.timeIntervalSince($0).rounded()) }
  }

  /// Headers every new object gets: storage class and server-side encryption.
  var objectHeaders: [String: String] {
    var h = ["content-type": "application/octet-stream"]
    if let c = settings.storageClass { h["x-amz-storage-class"] = c }
    if let sse = settings.serverSideEncryption { h["x-amz-server-side-encryption"] = sse }
    if let k = settings.kmsKeyId { h["x-amz-server-side-encryption-aws-kms-key-id"] = k }
    return h
  }

  /// With SSE-KMS the ETag is not the MD5 of the body, so it cannot be compared.
  var etagIsMD5: Bool { settings.serverSideEncryption != "aws:kms" }

  static let crc32Header = "x-amz-checksum-crc32"

  /// The header that makes the server check an upload body (`settings.checksum`), and the MD5
  /// when that is the check (for the ETag).
  func bodyCheck(_ body: ByteBuffer) -> (headers: [String: String], md5: [UInt8]?) {
    switch settings.checksum {
    case .md5:
      let md5 = Self.md5(body)
      return (["content-md5": Data(md5).base64EncodedString()], md5)
    case .crc32:
      return ([Self.crc32Header: Self.crc32(body)], nil)
    }
  }

  /// Checks S3's answer to an upload against the body's check: the ETag against the MD5, or the
  /// echoed CRC-32 (a store that does not echo it did not check it: the upload is refused).
  func checkUploaded(_ r: S3Response, _ check: (headers: [String: String], md5: [UInt8]?), what: String)
    throws
  {
    if let md5 = check.md5 {
      try checkETag(r.header("etag"), expected: SigV4Signer.hex(md5), what: what)
    } else if let crc = check.headers[Self.crc32Header], r.header(Self.crc32Header) != crc {
      guard let got = r.header(Self.crc32Header) else {
        throw BackupError(
          .storage,
          "\(location) did not confirm the CRC-32 of \(what): it does not check x-amz-checksum-crc32",
          hint: "set cloudConfig.checksum=md5 (Content-MD5, which every S3-compatible store checks)")
      }
      throw BackupError(.corrupt, "S3 stored \(what) with CRC-32 \(got), expected \(crc)")
    }
  }

  /// CRC-32 (the gzip polynomial; libdeflate's) as S3 writes it: base64 of its 4 big-endian bytes.
  static func crc32(_ buffer: ByteBuffer) -> String { buffer.withUnsafeReadableBytes { crc32($0) } }

  static func crc32(_ bytes: UnsafeRawBufferPointer) -> String {
    let crc = libdeflate_crc32(0, bytes.baseAddress, bytes.count)
    return withUnsafeBytes(of: crc.bigEndian) { Data($0).base64EncodedString() }
  }

  static func md5(_ bytes: [UInt8]) -> [UInt8] { Array(Insecure.MD5.hash(data: bytes)) }
  static func md5(_ buffer: ByteBuffer) -> [UInt8] {
    Array(buffer.withUnsafeReadableBytes { Insecure.MD5.hash(data: $0) })
  }

  /// Checks a returned ETag against the expected MD5 (hex, with an optional "-N" suffix).
  func checkETag(_ etag: String?, expected: String, what: String) throws {
    guard etagIsMD5 else { return }
    let got = (etag ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "\"")).lowercased()
    guard got == expected else {
      throw BackupError(
        .corrupt, "S3 stored \(what) with ETag \(got.isEmpty ? "(none)" : got), expected \(expected)",
        hint: "the data was damaged in transit; nothing was kept")
    }
  }
}

/// Just enough XML for S3's small documents: the text of elements by name, entities decoded.
enum XML {
  static func all(_ name: String, in text: String) -> [String] {
    var out: [String] = []
    var rest = text[...]
    let open = "<\(name)>"
    let close = "</\(name)>"
    while let a = rest.range(of: open) {
      guard let b = rest.range(of: close, range: a.upperBound..<rest.endIndex) else { break }
      out.append(decode(String(rest[a.upperBound..<b.lowerBound])))
      rest = rest[b.upperBound...]
    }
    return out
  }

  static func first(_ name: String, in text: String) -> String? { all(name, in: text).first }

  static func decode(_ s: String) -> String {
    guard s.contains("&") else { return s }
    var out = ""
    var i = s.startIndex
    while i < s.endIndex {
      if s[i] == "&", let semi = s[i...].firstIndex(of: ";") {
        let entity = s[s.index(after: i)..<semi]
        var replacement: String?
        switch entity {
        case "amp": replacement = "&"
        case "lt": replacement = "<"
        case "gt": replacement = ">"
        case "quot": replacement = "\""
        case "apos": replacement = "'"
        default:
          if entity.hasPrefix("#x"), let v = UInt32(entity.dropFirst(2), radix: 16), let u = UnicodeScalar(v)
          {
            replacement = String(Character(u))
          } else if entity.hasPrefix("#"), let v = UInt32(entity.dropFirst()), let u = UnicodeScalar(v) {
            replacement = String(Character(u))
          }
        }
        if let replacement {
          out += replacement
          i = s.index(after: semi)
          continue
        }
      }
      out.append(s[i])
      i = s.index(after: i)
    }
    return out
  }

  static func escape(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
      .replacingOccurrences(of: ">", with: "&gt;")
  }
}

/// An async-http-client on NIO's shared event loops whose requests fail at once when no
/// connection can be made: the caller's retries (RetryPolicy for S3, `Webhook.deliver`'s
/// attempts) are the one retry layer. With async-http-client's own connection retries on top,
/// every attempt at a dead server took the whole 10 s connect timeout, and an error a minute.
public func makeHTTPClient(
  redirects: HTTPClient.Configuration.RedirectConfiguration, readTimeout: TimeAmount
) -> HTTPClient {
  var configuration = HTTPClient.Configuration(
    redirectConfiguration: redirects, timeout: .init(connect: .seconds(10), read: readTimeout))
  configuration.connectionPool.retryConnectionEstablishment = false
  return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
}

/// One line for an async-http-client transport failure (the errno's text for socket errors, such
/// as "connection refused"), for S3 calls and webhooks alike.
public func describeTransportError(_ error: Error) -> String {
  if let io = error as? IOError { return String(cString: strerror(io.errnoCode)).lowercased() }
  if let e = error as? HTTPClientError {
    switch e {
    case .connectTimeout: return "no connection within 10 seconds"
    case .readTimeout: return "no answer in time"
    case .deadlineExceeded: return "the request took too long"
    case .remoteConnectionClosed: return "the server closed the connection"
    default: return "\(e)"
    }
  }
  return "\(error)"
}
