import BackupModel
import BackupPipeline
import Foundation

/// What `create --encrypt` encrypts to: X25519 recipients, or one passphrase (age allows a
/// passphrase only as the sole recipient).
public struct EncryptionRequest: Sendable {
  public var recipients: [String]
  public var passphrase: String?
  /// scrypt's log2(N) for passphrases (age's default 18; `AI_SHELL_SCRYPT_WORK_FACTOR`).
  public var workFactor: Int

  public init(recipients: [String], passphrase: String?, workFactor: Int = Age.defaultWorkFactor) {
    self.recipients = recipients
    self.passphrase = passphrase
    self.workFactor = workFactor
  }

  /// Checks the request before any work: at least one recipient, all parseable, and a
  /// passphrase never mixed with public keys.
  public func ageRecipients() throws -> [AgeRecipient] {
    if let passphrase {
      guard recipients.isEmpty else {
        throw BackupError(
          .usage, "an age passphrase cannot be combined with --recipient keys",
          hint: "encrypt either to public keys or with AI_SHELL_PASSPHRASE / --passphrase-file")
      }
      guard !passphrase.isEmpty else { throw BackupError(.usage, "the passphrase is empty") }
      return [.scrypt(passphrase: Array(passphrase.utf8), workFactor: workFactor)]
    }
    guard !recipients.isEmpty else {
      throw BackupError(
        .usage, "--encrypt needs a recipient",
        hint:
          "give --recipient age1..., --recipients-file FILE, or a passphrase in AI_SHELL_PASSPHRASE / --passphrase-file"
      )
    }
    return try recipients.map { try Age.parseRecipient($0) }
  }

  /// What the manifest records: the public keys, or "scrypt".
  public var manifestRecipients: [String] { passphrase != nil ? ["scrypt"] : recipients }

  /// The manifest's description of this encryption, for a payload of `payloadSize` bytes.
  public func manifestInfo(payloadSize: Int64, payloadSha256: String?) -> Manifest.EncryptionInfo {
    .init(
      recipients: manifestRecipients, payloadSizeBytes: payloadSize,
      scryptWorkFactor: passphrase != nil ? workFactor : nil, payloadSha256: payloadSha256)
  }
}

/// What can open encrypted backups: identity files and/or a passphrase.
public struct DecryptionKeys: Sendable {
  public var identityFiles: [String]
  public var passphrase: String?

  public init(identityFiles: [String] = [], passphrase: String? = nil) {
    self.identityFiles = identityFiles
    self.passphrase = passphrase
  }

  public var isEmpty: Bool { identityFiles.isEmpty && passphrase == nil }

  /// Encryption to the same keys: the public keys of the X25519 identities, else the passphrase.
  public func encryptionRequest() throws -> EncryptionRequest {
    var recipients: [String] = []
    for file in identityFiles {
      guard let data = FileManager.default.contents(atPath: file) else {
        throw BackupError(.notFound, "cannot read identity file \(file)")
      }
      for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline)
      where line.hasPrefix("AGE-SECRET-KEY-1") {
        recipients.append(try Age.recipient(of: String(line)))
      }
    }
    return EncryptionRequest(
      recipients: recipients, passphrase: recipients.isEmpty ? passphrase : nil,
      workFactor: try SecretSource.workFactor())
  }

  public func identities() throws -> [AgeIdentity] {
    var out: [AgeIdentity] = []
    for file in identityFiles {
      guard let data = FileManager.default.contents(atPath: file) else {
        throw BackupError(.notFound, "cannot read identity file \(file)")
      }
      out += try Age.parseIdentities(String(decoding: data, as: UTF8.self))
    }
    if let passphrase { out.append(.passphrase(passphrase)) }
    return out
  }
}

/// Where secrets come from: never a flag value (argv is visible to every user of the machine).
public enum SecretSource {
  /// `--passphrase-file` if given, else `AI_SHELL_PASSPHRASE`. A file's one trailing newline is
  /// dropped.
  public static func passphrase(
    file: String?, environment: [String: String] = ProcessInfo.processInfo.environment
  )
    throws -> String?
  {
    if let file {
      guard let data = FileManager.default.contents(atPath: file) else {
        throw BackupError(.notFound, "cannot read passphrase file \(file)")
      }
      var text = String(decoding: data, as: UTF8.self)
      if text.hasSuffix("\r\n") {
        text.removeLast(2)
      } else if text.hasSuffix("\n") {
        text.removeLast()
      }
      return text
    }
    return environment["AI_SHELL_PASSPHRASE"].flatMap { $0.isEmpty ? nil : $0 }
  }

  /// Recipients from `--recipient` values and `--recipients-file` files (one per line, `#`
  /// comments and blank lines ignored).
  public static func recipients(_ values: [String], files: [String]) throws -> [String] {
    var out = values
    for file in files {
      guard let data = FileManager.default.contents(atPath: file) else {
        throw BackupError(.notFound, "cannot read recipients file \(file)")
      }
      for line in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
        let t = line.trimmingCharacters(in: .whitespaces)
        if !t.isEmpty && !t.hasPrefix("#") { out.append(t) }
      }
    }
    return out
  }

  /// scrypt work factor for new passphrase backups: `AI_SHELL_SCRYPT_WORK_FACTOR` (10...22), else 18.
  public static func workFactor(environment: [String: String] = ProcessInfo.processInfo.environment) throws
    -> Int
  {
    guard let text = environment["AI_SHELL_SCRYPT_WORK_FACTOR"] else { return Age.defaultWorkFactor }
    guard let n = Int(text), (10...22).contains(n) else {
      throw BackupError(.usage, "AI_SHELL_SCRYPT_WORK_FACTOR must be a number from 10 to 22, got \"\(text)\"")
    }
    return n
  }
}
