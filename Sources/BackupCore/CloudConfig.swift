import BackupCloud
import BackupModel
import BackupStorage
import Foundation
import Logging

/// The `cloudConfig.*` keys of `cloudProvider=aws-s3`, their checks, and the store they build.
/// Credentials are never config values: they come from the AWS environment variables or
/// profile files (`AWSCredentials`).
public enum CloudConfig {
  enum Kind {
    case text, bool
    case choice([String])
    case whole(ClosedRange<Int>)
  }

  static let s3Keys: [String: Kind] = [
    "bucket": .text, "region": .text, "prefix": .text, "endpoint": .text, "forcePathStyle": .bool,
    "storageClass": .choice([
      "STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE",
      "REDUCED_REDUNDANCY", "EXPRESS_ONEZONE",
    ]),
    "serverSideEncryption": .choice(["AES256", "aws:kms"]), "kmsKeyId": .text,
    "partSizeMiB": .whole(5...5120), "parallel": .whole(1...64),
    "checksum": .choice(S3Checksum.allCases.map(\.rawValue)),
  ]

  static let credentialKeys = [
    "accesskeyid", "secretaccesskey", "sessiontoken", "awsaccesskeyid", "awssecretaccesskey", "secretkey",
    "accesskey",
  ]

  public static var s3KeyNames: [String] { s3Keys.keys.sorted() }

  /// Checks `cloudConfig` values; with `aws-s3` an unknown key is an error too.
  static func validate(_ config: Config) throws {
    for (key, value) in config.cloudConfig {
      if credentialKeys.contains(key.lowercased()) {
        throw BackupError(
          .usage, "cloudConfig.\(key) cannot be stored: credentials never go into the config file",
          hint: "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or set AWS_PROFILE (~/.aws/credentials)")
      }
      guard let kind = s3Keys[key] else {
        if config.cloudProvider == .awsS3 {
          throw BackupError(
            .usage, "unknown config key \"cloudConfig.\(key)\" for aws-s3",
            hint: "known keys: \(s3KeyNames.map { "cloudConfig.\($0)" }.joined(separator: ", "))")
        }
        continue
      }
      func bad(_ why: String) -> BackupError { BackupError(.usage, "invalid cloudConfig.\(key): \(why)") }
      switch (kind, value) {
      case (.text, .string(let s)):
        if key == "bucket" && !isBucketName(s) {
          throw bad("\"\(s)\" is not a bucket name (3-63 characters: a-z, 0-9, dot, hyphen)")
        }
        if key == "endpoint" {
          guard let u = URL(string: s), ["http", "https"].contains(u.scheme ?? ""), u.host != nil else {
            throw bad(
              "\"\(s)\" is not an http(s) URL such as https://s3.example.com or http://127.0.0.1:9000")
          }
        }
        if key == "prefix"
          && (s.contains("\0") || s.split(separator: "/").contains { $0 == "." || $0 == ".." })
        {
          throw bad("must not contain . or .. components")
        }
      case (.text, .number), (.bool, .bool): break
      case (.bool, _): throw bad("must be true or false")
      case (.choice(let allowed), .string(let s)):
        guard allowed.contains(s) else { throw bad("\"\(s)\"; allowed: \(allowed.joined(separator: ", "))") }
      case (.choice(let allowed), _): throw bad("allowed: \(allowed.joined(separator: ", "))")
      case (.whole(let range), .number(let n)):
        guard n == n.rounded(), range.contains(Int(exactly: n) ?? -1) else {
          throw bad("must be a whole number from \(range.lowerBound) to \(range.upperBound)")
        }
      case (.whole(let range), _):
        throw bad("must be a whole number from \(range.lowerBound) to \(range.upperBound)")
      default: throw bad("must be a string")
      }
    }
    if config.cloudConfig["kmsKeyId"] != nil, config.cloudConfig["serverSideEncryption"] != .string("aws:kms")
    {
      throw BackupError(
        .usage, "invalid cloudConfig.kmsKeyId: it needs cloudConfig.serverSideEncryption=aws:kms")
    }
  }

  static func isBucketName(_ s: String) -> Bool {
    (3...63).contains(s.count)
      && s.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "." || $0 == "-" }
  }

  static func text(_ v: JSONValue?) -> String? {
    switch v {
    case .string(let s): return s.isEmpty ? nil : s
    case .number: return v!.displayText
    default: return nil
    }
  }

  /// The S3 settings of the config (`parallel` overrides `cloudConfig.parallel`).
  public static func s3Settings(_ config: Config, parallel: Int? = nil) throws -> S3Settings {
    guard config.cloudProvider == .awsS3 else {
      throw BackupError(
        .usage,
        config.cloudProvider == .none
          ? "--cloud needs a cloud provider, and none is configured"
          : "cloud provider \(config.cloudProvider.rawValue) is not supported yet (only aws-s3)",
        hint:
          "ai-shell backup config --set cloudProvider=aws-s3 cloudConfig.bucket=NAME cloudConfig.region=REGION"
      )
    }
    let c = config.cloudConfig
    guard let bucket = text(c["bucket"]) else {
      throw BackupError(
        .usage, "cloudConfig.bucket is not set", hint: "ai-shell backup config --set cloudConfig.bucket=NAME")
    }
    func whole(_ key: String) -> Int? {
      if case .number(let n) = c[key] { return Int(n) } else { return nil }
    }
    var forcePathStyle: Bool?
    if case .bool(let b) = c["forcePathStyle"] { forcePathStyle = b }
    return S3Settings(
      bucket: bucket, region: text(c["region"]) ?? AWSCredentials.region() ?? "us-east-1",
      prefix: text(c["prefix"]) ?? "", endpoint: text(c["endpoint"]), forcePathStyle: forcePathStyle,
      storageClass: text(c["storageClass"]), serverSideEncryption: text(c["serverSideEncryption"]),
      kmsKeyId: text(c["kmsKeyId"]), partSize: (whole("partSizeMiB") ?? 16) * 1024 * 1024,
      parallel: parallel ?? whole("parallel") ?? 5,
      checksum: text(c["checksum"]).flatMap { S3Checksum(rawValue: $0) } ?? .md5)
  }

  /// The configured cloud store, wrapped for retries (and `--limit-rate`, when given).
  public static func makeStore(
    _ config: Config, parallel: Int? = nil, limitRate: Int64? = nil, logger: Logger? = nil
  ) throws -> BlobStore {
    let settings = try s3Settings(config, parallel: parallel)
    let policy = RetryPolicy(onRetry: { attempt, error in
      logger?.warning("retrying after attempt \(attempt): \(error)")
    })
    let s3 = try S3Store(settings: settings, credentials: try AWSCredentials.resolve(), partRetry: policy)
    var store: BlobStore = RetryingStore(s3, policy: policy)
    if let limitRate { store = RateLimitedStore(store, bytesPerSecond: limitRate) }
    return store
  }
}
