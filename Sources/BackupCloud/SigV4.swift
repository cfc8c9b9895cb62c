import BackupModel
import Crypto
import Foundation

/// AWS Signature Version 4 for S3 (docs.aws.amazon.com, "Signature Version 4 signing process"):
/// a canonical request, a string to sign, a key derived by HMAC chain from the secret, and the
/// Authorization header. Written here so that every byte of it can be checked against AWS's
/// published example (BackupCloudTests) and against a verifying server (SeaweedFS).
public struct SigV4Signer: Sendable {
  public var credentials: AWSCredentials
  public var region: String
  public var service = "s3"

  public init(credentials: AWSCredentials, region: String) {
    self.credentials = credentials
    self.region = region
  }

  /// The SHA-256 (hex) of an empty body.
  public static let emptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

  /// The payload hash of a request whose body is not part of the signature (S3 accepts it; the
  /// body is then checked by a signed Content-MD5 header instead).
  public static let unsignedPayload = "UNSIGNED-PAYLOAD"

  /// Headers to add to a request: x-amz-date, x-amz-content-sha256, the session token if any,
  /// and Authorization. `path` is the URI path exactly as sent (already encoded with
  /// `encodePath`); `query` is unencoded; `headers` are the other headers to sign (host at least).
  public func sign(
    method: String, path: String, query: [(String, String)], headers: [String: String], payloadHash: String,
    date: Date = Date()
  ) -> [String: String] {
    let amzDate = UTCStamp.basic(date)
    let day = String(amzDate.prefix(8))
    var signed: [String: String] = [:]
    for (k, v) in headers { signed[k.lowercased()] = v.trimmingCharacters(in: .whitespaces) }
    signed["x-amz-date"] = amzDate
    signed["x-amz-content-sha256"] = payloadHash
    if let token = credentials.sessionToken { signed["x-amz-security-token"] = token }
    let names = signed.keys.sorted()
    let canonicalHeaders = names.map { "\($0):\(signed[$0]!)\n" }.joined()
    let signedHeaders = names.joined(separator: ";")
    let canonicalRequest = [
      method, path, Self.canonicalQuery(query), canonicalHeaders, signedHeaders, payloadHash,
    ].joined(separator: "\n")
    let scope = self.scope(day)
    let signature = self.signature(of: canonicalRequest, amzDate: amzDate)
    var out: [String: String] = [
      "x-amz-date": amzDate, "x-amz-content-sha256": payloadHash,
      "Authorization":
        "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyId)/\(scope),SignedHeaders=\(signedHeaders),Signature=\(signature)",
    ]
    if let token = credentials.sessionToken { out["x-amz-security-token"] = token }
    return out
  }

  /// `yyyyMMdd'T'HHmmss'Z'` in UTC, by hand: a DateFormatter per request costs more than the
  /// signature and loads ICU.
  /// A presigned request (docs.aws.amazon.com, "Authenticating Requests: Using Query
  /// Parameters"): the query to send, `query` plus the X-Amz-* parameters and the signature,
  /// valid for `expires` seconds from `date`. Only the host header is signed and the payload is
  /// UNSIGNED-PAYLOAD. The canonical request and the key chain are the header signer's, so tests
  /// that present these URLs (tampered or not) to SeaweedFS check that code too.
  public func presign(
    method: String, path: String, host: String, query: [(String, String)] = [], expires: Int,
    date: Date = Date()
  ) -> [(String, String)] {
    let amzDate = UTCStamp.basic(date)
    var all =
      query + [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        ("X-Amz-Credential", "\(credentials.accessKeyId)/\(scope(String(amzDate.prefix(8))))"),
        ("X-Amz-Date", amzDate), ("X-Amz-Expires", String(expires)), ("X-Amz-SignedHeaders", "host"),
      ]
    if let token = credentials.sessionToken { all.append(("X-Amz-Security-Token", token)) }
    let canonicalRequest = [
      method, path, Self.canonicalQuery(all), "host:\(host)\n", "host", Self.unsignedPayload,
    ].joined(separator: "\n")
    return all + [("X-Amz-Signature", signature(of: canonicalRequest, amzDate: amzDate))]
  }

  private func scope(_ day: String) -> String { "\(day)/\(region)/\(service)/aws4_request" }

  /// The signature of a canonical request: the string to sign, HMAC'd with the key derived from
  /// the secret for the request's day, region and service.
  private func signature(of canonicalRequest: String, amzDate: String) -> String {
    let day = String(amzDate.prefix(8))
    let stringToSign = [
      "AWS4-HMAC-SHA256", amzDate, scope(day), Self.hex(SHA256.hash(data: Data(canonicalRequest.utf8))),
    ].joined(separator: "\n")
    var key = SymmetricKey(data: Data("AWS4\(credentials.secretAccessKey)".utf8))
    for step in [day, region, service, "aws4_request"] {
      key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(step.utf8), using: key)))
    }
    return Self.hex(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key))
  }

  static func hex<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 { lowerHex(bytes) }

  static func hex(_ digest: SHA256.Digest) -> String { hex(Array(digest)) }
  static func hex(_ mac: HMAC<SHA256>.MAC) -> String { hex(Array(mac)) }

  /// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters stay, every other
  /// UTF-8 byte becomes %XX (uppercase); `/` stays only when `keepSlash`.
  public static func percentEncode(_ s: String, keepSlash: Bool) -> String {
    var out = ""
    for b in s.utf8 {
      switch b {
      case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
        UInt8(ascii: "~"):
        out.unicodeScalars.append(UnicodeScalar(b))
      case UInt8(ascii: "/") where keepSlash:
        out.append("/")
      default:
        out += String(format: "%%%02X", b)
      }
    }
    return out
  }

  /// The URI path for an object key (S3 does not normalise or double-encode it).
  public static func encodePath(_ path: String) -> String { percentEncode(path, keepSlash: true) }

  /// Query parameters sorted by encoded name (then value), each side encoded.
  public static func canonicalQuery(_ query: [(String, String)]) -> String {
    var pairs: [(String, String)] = query.map { pair in
      (percentEncode(pair.0, keepSlash: false), percentEncode(pair.1, keepSlash: false))
    }
    pairs.sort { (a: (String, String), b: (String, String)) -> Bool in a.0 == b.0 ? a.1 < b.1 : a.0 < b.0 }
    let items: [String] = pairs.map { pair in pair.0 + "=" + pair.1 }
    return items.joined(separator: "&")
  }
}
