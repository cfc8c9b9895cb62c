import BackupModel
import Crypto

/// Who a file is encrypted to.
public enum AgeRecipient: Sendable {
  /// An X25519 public key (32 bytes), written "age1...".
  case x25519(publicKey: [UInt8])
  /// A passphrase; `workFactor` is log2 of scrypt's N (age's default is 18). Must be the only recipient.
  case scrypt(passphrase: [UInt8], workFactor: Int)
}

/// What can open a file.
public enum AgeIdentity: Sendable {
  /// An X25519 secret key (32 bytes), written "AGE-SECRET-KEY-1...".
  case x25519(secretKey: [UInt8])
  /// A passphrase; files whose scrypt work factor exceeds `maxWorkFactor` are refused as corrupt
  /// (an attacker-chosen factor could otherwise make decryption run for hours).
  case scrypt(passphrase: [UInt8], maxWorkFactor: Int)

  /// A passphrase identity with the default maximum work factor (22).
  public static func passphrase(_ passphrase: String, maxWorkFactor: Int = Age.defaultMaxWorkFactor)
    -> AgeIdentity
  {
    .scrypt(passphrase: Array(passphrase.utf8), maxWorkFactor: maxWorkFactor)
  }
}

/// Keys of the age format (age-encryption.org/v1).
public enum Age {
  /// The first bytes of every binary age file ("age-encryption.org/v1\n").
  public static let magic = Array("age-encryption.org/v1\n".utf8)

  /// The scrypt work factor used when none is given (same as the age CLI).
  public static let defaultWorkFactor = 18
  /// The highest scrypt work factor accepted when decrypting, unless the identity says otherwise.
  public static let defaultMaxWorkFactor = 22

  static let recipientHRP = "age"
  static let identityHRP = "age-secret-key-"

  /// Parses an "age1..." recipient (an X25519 public key).
  public static func parseRecipient(_ text: String) throws -> AgeRecipient {
    let trimmed = text.trimmingASCIIWhitespace()
    if trimmed.uppercased().hasPrefix("AGE-SECRET-KEY-") {
      throw BackupError(
        .usage, "an age secret key was given where a recipient (age1...) is expected",
        hint: "pass the public key, shown by age-keygen -y")
    }
    guard trimmed.hasPrefix("age1") else {
      throw BackupError(.usage, "an age recipient must start with \"age1\"")
    }
    let decoded: (hrp: String, bytes: [UInt8])
    do {
      decoded = try Bech32.decode(trimmed)
    } catch {
      throw BackupError(.usage, "the age recipient is not valid Bech32 (\(describe(error)))")
    }
    guard decoded.hrp == recipientHRP else {
      throw BackupError(.usage, "the age recipient has the wrong prefix")
    }
    guard decoded.bytes.count == 32 else {
      throw BackupError(.usage, "the age recipient holds \(decoded.bytes.count) bytes, expected 32")
    }
    return .x25519(publicKey: decoded.bytes)
  }

  /// Parses an identity file as age-keygen writes it: "#" comments, blank lines and
  /// "AGE-SECRET-KEY-1..." lines.
  public static func parseIdentities(_ fileText: String) throws -> [AgeIdentity] {
    var identities: [AgeIdentity] = []
    var lineNumber = 0
    for rawLine in fileText.split(separator: "\n", omittingEmptySubsequences: false) {
      lineNumber += 1
      let line = String(rawLine).trimmingASCIIWhitespace()
      if line.isEmpty || line.hasPrefix("#") { continue }
      guard line.hasPrefix("AGE-SECRET-KEY-1") else {
        throw BackupError(
          .usage, "line \(lineNumber) of the identity file is not an age identity (AGE-SECRET-KEY-1...)",
          hint: "only native X25519 identities are supported")
      }
      identities.append(.x25519(secretKey: try parseSecretKey(line, lineNumber: lineNumber)))
    }
    guard !identities.isEmpty else {
      throw BackupError(.usage, "the identity file holds no age identity (AGE-SECRET-KEY-1...)")
    }
    return identities
  }

  /// A new X25519 identity and its recipient.
  public static func generateIdentity() -> (identity: String, recipient: String) {
    let key = Curve25519.KeyAgreement.PrivateKey()
    let secret = [UInt8](key.rawRepresentation)
    return (encodeIdentity(secret), encodeRecipient([UInt8](key.publicKey.rawRepresentation)))
  }

  /// The recipient ("age1...") of an identity ("AGE-SECRET-KEY-1...").
  public static func recipient(of identity: String) throws -> String {
    let secret = try parseSecretKey(identity.trimmingASCIIWhitespace(), lineNumber: nil)
    return encodeRecipient(try publicKey(ofSecretKey: secret))
  }

  /// The "age1..." form of an X25519 public key.
  public static func encodeRecipient(_ publicKey: [UInt8]) -> String {
    Bech32.encode(hrp: recipientHRP, bytes: publicKey)
  }

  /// The "AGE-SECRET-KEY-1..." form of an X25519 secret key.
  public static func encodeIdentity(_ secretKey: [UInt8]) -> String {
    Bech32.encode(hrp: identityHRP, bytes: secretKey).uppercased()
  }

  static func publicKey(ofSecretKey secret: [UInt8]) throws -> [UInt8] {
    do {
      let key = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: secret)
      return [UInt8](key.publicKey.rawRepresentation)
    } catch {
      throw BackupError(.usage, "the age identity is not a valid X25519 key")
    }
  }

  private static func parseSecretKey(_ text: String, lineNumber: Int?) throws -> [UInt8] {
    let whereText = lineNumber.map { " on line \($0) of the identity file" } ?? ""
    guard text.hasPrefix("AGE-SECRET-KEY-1") else {
      throw BackupError(.usage, "an age identity must start with \"AGE-SECRET-KEY-1\"\(whereText)")
    }
    let decoded: (hrp: String, bytes: [UInt8])
    do {
      decoded = try Bech32.decode(text)
    } catch {
      throw BackupError(.usage, "the age identity\(whereText) is not valid Bech32 (\(describe(error)))")
    }
    guard decoded.hrp == identityHRP, decoded.bytes.count == 32 else {
      throw BackupError(.usage, "the age identity\(whereText) is not a 32-byte X25519 secret key")
    }
    return decoded.bytes
  }

  private static func describe(_ error: Bech32.DecodeError) -> String {
    switch error {
    case .mixedCase: return "mixed upper and lower case"
    case .invalidCharacter: return "invalid character"
    case .noSeparator: return "missing separator or too short"
    case .badChecksum: return "bad checksum, possibly a typo"
    case .badPadding: return "bad padding"
    }
  }
}

extension String {
  func trimmingASCIIWhitespace() -> String {
    let bytes = Array(utf8)
    func isSpace(_ c: UInt8) -> Bool {
      c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D || c == 0x0B || c == 0x0C
    }
    guard let first = bytes.firstIndex(where: { !isSpace($0) }) else { return "" }
    let last = bytes.lastIndex(where: { !isSpace($0) })!
    return String(decoding: bytes[first...last], as: UTF8.self)
  }
}
