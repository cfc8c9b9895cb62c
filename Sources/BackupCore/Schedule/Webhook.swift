import AsyncHTTPClient
import BackupCloud
import BackupModel
import Foundation
import NIOCore
import NIOHTTP1

/// The JSON body POSTed to a schedule's webhook after each run (docs/SCHEDULES.md).
public struct WebhookPayload: Codable, Sendable, Equatable {
  /// `backup.succeeded` or `backup.failed`.
  public var event: String
  public var schedule: String
  public var database: String
  public var backupId: String?
  public var sizeBytes: Int64?
  public var durationSeconds: Double
  /// `success` or `failed`.
  public var status: String
  public var error: String?
  /// When the run finished (ISO 8601, UTC).
  public var at: Date

  enum CodingKeys: String, CodingKey {
    case event, schedule, database, backupId, sizeBytes, durationSeconds, status, error, at
  }

  public func encode(to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(event, forKey: .event)
    try c.encode(schedule, forKey: .schedule)
    try c.encode(database, forKey: .database)
    // every key is always present: null when it does not apply
    if let backupId { try c.encode(backupId, forKey: .backupId) } else { try c.encodeNil(forKey: .backupId) }
    if let sizeBytes {
      try c.encode(sizeBytes, forKey: .sizeBytes)
    } else {
      try c.encodeNil(forKey: .sizeBytes)
    }
    try c.encode(durationSeconds, forKey: .durationSeconds)
    try c.encode(status, forKey: .status)
    if let error { try c.encode(error, forKey: .error) } else { try c.encodeNil(forKey: .error) }
    try c.encode(at, forKey: .at)
  }
}

/// Delivers a webhook: one POST plus up to `retries` more after 1 s, 2 s, 4 s... Never throws: the
/// result says whether it was delivered (any 2xx answer) and what went wrong.
public enum Webhook {
  public static func deliver(
    _ payload: WebhookPayload, to url: String, retries: Int = 3, timeoutSeconds: Double = 10,
    firstBackoffSeconds: Double = 1, log: (String) -> Void
  ) -> Bool {
    guard let target = URL(string: url) else {
      log("webhook \(url): not a URL")
      return false
    }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    encoder.dateEncodingStrategy = UTCStamp.jsonEncoding
    guard let body = try? encoder.encode(payload) else { return false }
    let request: HTTPClient.Request
    do {
      var r = try HTTPClient.Request(url: url, method: .POST, body: .data(body))
      r.headers.replaceOrAdd(name: "Content-Type", value: "application/json")
      r.headers.replaceOrAdd(name: "User-Agent", value: "ai-shell/\(ToolInfo.version)")
      request = r
    } catch {
      log("webhook \(redacted(target)): not a usable http(s) URL (\(error))")
      return false
    }
    var backoff = firstBackoffSeconds
    for attempt in 0...max(retries, 0) {
      if attempt > 0 {
        Thread.sleep(forTimeInterval: backoff)
        backoff *= 2
      }
      let problem = post(request, timeoutSeconds: timeoutSeconds)
      guard let problem else { return true }
      log(
        "webhook \(redacted(target)) attempt \(attempt + 1) of \(retries + 1) failed: \(problem)")
    }
    log("webhook \(redacted(target)) not delivered; the backup's result is unaffected")
    return false
  }

  /// The URL without query and credentials (they may carry tokens).
  static func redacted(_ url: URL) -> String {
    guard var c = URLComponents(url: url, resolvingAgainstBaseURL: false) else { return "(url)" }
    c.query = nil
    c.user = nil
    c.password = nil
    return c.string ?? "(url)"
  }

  /// The process's webhook client (async-http-client, as the S3 backend uses: Foundation's
  /// URLSession would load libcurl and GnuTLS into every ai-shell process for this alone).
  /// Redirects are followed, as a browser would; a refused connection fails the attempt at once
  /// (the attempts and their backoff are `deliver`'s).
  static let client = makeHTTPClient(
    redirects: .follow(max: 5, allowCycles: false), readTimeout: .seconds(60))

  /// One POST; nil on a 2xx answer, else what went wrong.
  static func post(_ request: HTTPClient.Request, timeoutSeconds: Double) -> String? {
    let deadline = NIODeadline.now() + .milliseconds(Int64(timeoutSeconds * 1000))
    do {
      let response = try client.execute(request: request, deadline: deadline).wait()
      let code = Int(response.status.code)
      return (200..<300).contains(code) ? nil : "HTTP \(code)"
    } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
      return "timed out after \(Int(timeoutSeconds)) s"
    } catch {
      return describeTransportError(error)
    }
  }
}
