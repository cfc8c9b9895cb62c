import BackupModel
import Foundation

/// AWS credentials found the way the AWS CLI finds them: AWS_ACCESS_KEY_ID /
/// AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN), else the profile AWS_PROFILE (default
/// "default") in ~/.aws/credentials (AWS_SHARED_CREDENTIALS_FILE), then ~/.aws/config
/// (AWS_CONFIG_FILE). `source` names where they came from; the secret never appears in a
/// description or an error.
public struct AWSCredentials: Sendable, CustomStringConvertible {
  public var accessKeyId: String
  public var secretAccessKey: String
  public var sessionToken: String?
  /// Where they came from, for error messages ("AWS_ACCESS_KEY_ID", "profile dev in ~/.aws/credentials").
  public var source: String

  public init(accessKeyId: String, secretAccessKey: String, sessionToken: String? = nil, source: String) {
    self.accessKeyId = accessKeyId
    self.secretAccessKey = secretAccessKey
    self.sessionToken = sessionToken
    self.source = source
  }

  public var description: String { "access key \(accessKeyId) from \(source)" }

  static func nonEmpty(_ s: String?) -> String? { s.flatMap { $0.isEmpty ? nil : $0 } }

  public static func resolve(environment env: [String: String] = ProcessInfo.processInfo.environment) throws
    -> AWSCredentials
  {
    if let ak = nonEmpty(env["AWS_ACCESS_KEY_ID"]) {
      guard let sk = nonEmpty(env["AWS_SECRET_ACCESS_KEY"]) else {
        throw BackupError(
          .usage, "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
          hint: "export both, or use a profile (AWS_PROFILE and ~/.aws/credentials)")
      }
      return AWSCredentials(
        accessKeyId: ak, secretAccessKey: sk, sessionToken: nonEmpty(env["AWS_SESSION_TOKEN"]),
        source: "the environment (AWS_ACCESS_KEY_ID)")
    }
    let profile = nonEmpty(env["AWS_PROFILE"]) ?? "default"
    let files = AWSFiles(environment: env)
    for (path, section) in [(files.credentials, profile), (files.config, files.configSection(profile))] {
      guard let values = AWSFiles.section(section, inFile: path),
        let ak = nonEmpty(values["aws_access_key_id"])
      else { continue }
      guard let sk = nonEmpty(values["aws_secret_access_key"]) else {
        throw BackupError(
          .usage, "profile \(profile) in \(path) has aws_access_key_id but no aws_secret_access_key")
      }
      return AWSCredentials(
        accessKeyId: ak, secretAccessKey: sk, sessionToken: nonEmpty(values["aws_session_token"]),
        source: "profile \(profile) in \(path)")
    }
    throw BackupError(
      .usage,
      "no AWS credentials found (looked for AWS_ACCESS_KEY_ID and profile \(profile) in \(files.credentials) and \(files.config))",
      hint:
        "export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or set AWS_PROFILE to a profile of ~/.aws/credentials"
    )
  }

  /// The region of the profile in ~/.aws/config (or AWS_REGION / AWS_DEFAULT_REGION first).
  public static func region(environment env: [String: String] = ProcessInfo.processInfo.environment)
    -> String?
  {
    if let r = nonEmpty(env["AWS_REGION"]) ?? nonEmpty(env["AWS_DEFAULT_REGION"]) { return r }
    let files = AWSFiles(environment: env)
    let profile = nonEmpty(env["AWS_PROFILE"]) ?? "default"
    return nonEmpty(AWSFiles.section(files.configSection(profile), inFile: files.config)?["region"])
  }
}

/// The two INI files of the AWS CLI.
struct AWSFiles {
  var credentials: String
  var config: String

  init(environment env: [String: String]) {
    let home = env["HOME"] ?? NSHomeDirectory()
    credentials = AWSCredentials.nonEmpty(env["AWS_SHARED_CREDENTIALS_FILE"]) ?? "\(home)/.aws/credentials"
    config = AWSCredentials.nonEmpty(env["AWS_CONFIG_FILE"]) ?? "\(home)/.aws/config"
  }

  /// ~/.aws/config names profiles `[profile NAME]`, except `[default]`.
  func configSection(_ profile: String) -> String { profile == "default" ? "default" : "profile \(profile)" }

  /// The `key = value` pairs of `[section]` in an INI file, or nil.
  static func section(_ name: String, inFile path: String) -> [String: String]? {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
    var current: String?
    var found: [String: String]?
    for raw in text.split(whereSeparator: \.isNewline) {
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
      if line.hasPrefix("[") && line.hasSuffix("]") {
        current = line.dropFirst().dropLast().trimmingCharacters(in: .whitespaces)
        if current == name && found == nil { found = [:] }
        continue
      }
      guard current == name, let eq = line.firstIndex(of: "=") else { continue }
      let key = line[..<eq].trimmingCharacters(in: .whitespaces).lowercased()
      found?[key] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
    }
    return found
  }
}
