import BackupModel
import Crypto
import _CryptoExtras

/// One recipient stanza of an age header.
struct AgeStanza {
  var type: String
  var arguments: [String]
  var body: [UInt8]
}

/// Errors of the age format, mapped to `BackupError` in one place. Messages never hold key material.
enum AgeFailure {
  static func header(_ what: String) -> BackupError {
    BackupError(.corrupt, "age file header is invalid: \(what)")
  }
  static func mac() -> BackupError {
    BackupError(.corrupt, "age file header MAC does not match: the header was modified")
  }
  static func payload(_ what: String) -> BackupError {
    BackupError(.corrupt, "age file payload is corrupt: \(what)")
  }
  static func armor(_ what: String) -> BackupError {
    BackupError(.corrupt, "age file armor is invalid: \(what)")
  }
  static func noMatch() -> BackupError {
    BackupError(.refused, "no identity matches this age file", hint: "check --identity or the passphrase")
  }
}

enum AgeFormat {
  static let versionLine = Array("age-encryption.org/v1".utf8)
  static let chunkSize = 64 * 1024
  static let tagSize = 16
  static let sealedChunkSize = chunkSize + tagSize
  static let nonceSize = 16
  static let fileKeySize = 16
  static let x25519Label = Array("age-encryption.org/v1/X25519".utf8)
  static let scryptLabel = Array("age-encryption.org/v1/scrypt".utf8)
  /// A header larger than this is refused (age headers are a few hundred bytes per recipient).
  static let maxHeaderSize = 1 << 20

  // MARK: Writing

  /// The header bytes up to and including "---" (the MAC covers exactly these).
  static func encodeHeaderWithoutMAC(_ stanzas: [AgeStanza]) -> [UInt8] {
    var out = versionLine
    out.append(0x0A)
    for stanza in stanzas {
      out += Array("->".utf8)
      for arg in [stanza.type] + stanza.arguments {
        out.append(0x20)
        out += Array(arg.utf8)
      }
      out.append(0x0A)
      let b64 = AgeBase64.encode(stanza.body)
      var i = 0
      while true {
        let end = min(i + 64, b64.count)
        out += b64[i..<end]
        out.append(0x0A)
        if end - i < 64 { break }  // the final line is always short, possibly empty
        i = end
      }
    }
    out += Array("---".utf8)
    return out
  }

  static func headerMAC(fileKey: [UInt8], headerWithoutMAC: [UInt8]) -> [UInt8] {
    let key = HKDF<SHA256>.deriveKey(
      inputKeyMaterial: SymmetricKey(data: fileKey), salt: [UInt8](), info: Array("header".utf8),
      outputByteCount: 32)
    return [UInt8](HMAC<SHA256>.authenticationCode(for: headerWithoutMAC, using: key))
  }

  static func payloadKey(fileKey: [UInt8], nonce: [UInt8]) -> SymmetricKey {
    HKDF<SHA256>.deriveKey(
      inputKeyMaterial: SymmetricKey(data: fileKey), salt: nonce, info: Array("payload".utf8),
      outputByteCount: 32)
  }

  static let zeroNonce = try! ChaChaPoly.Nonce(data: [UInt8](repeating: 0, count: 12))

  static func seal(_ plaintext: [UInt8], key: SymmetricKey) throws -> [UInt8] {
    let box = try ChaChaPoly.seal(plaintext, using: key, nonce: zeroNonce)
    return [UInt8](box.ciphertext) + [UInt8](box.tag)
  }

  /// Opens a stanza body (16-byte file key + tag); nil when the tag does not verify.
  static func open(_ body: [UInt8], key: SymmetricKey) -> [UInt8]? {
    guard body.count == fileKeySize + tagSize,
      let box = try? ChaChaPoly.SealedBox(
        nonce: zeroNonce, ciphertext: body[0..<fileKeySize], tag: body[fileKeySize...]),
      let plain = try? ChaChaPoly.open(box, using: key)
    else { return nil }
    return [UInt8](plain)
  }

  static func scryptKey(passphrase: [UInt8], salt: [UInt8], workFactor: Int) throws -> SymmetricKey {
    do {
      return try KDF.Scrypt.deriveKey(
        from: passphrase, salt: scryptLabel + salt, outputByteCount: 32, rounds: 1 << workFactor,
        blockSize: 8, parallelism: 1)
    } catch {
      throw BackupError(.failure, "scrypt key derivation failed (work factor \(workFactor))")
    }
  }

  static func wrap(fileKey: [UInt8], for recipient: AgeRecipient) throws -> AgeStanza {
    switch recipient {
    case .x25519(let publicKeyBytes):
      let recipientKey: Curve25519.KeyAgreement.PublicKey
      do {
        recipientKey = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: publicKeyBytes)
      } catch {
        throw BackupError(.usage, "the age recipient is not a valid X25519 public key")
      }
      let ephemeral = Curve25519.KeyAgreement.PrivateKey()
      let share = [UInt8](ephemeral.publicKey.rawRepresentation)
      let shared: SharedSecret
      do {
        shared = try ephemeral.sharedSecretFromKeyAgreement(with: recipientKey)
      } catch {
        throw BackupError(.usage, "the age recipient is not a valid X25519 public key")
      }
      guard !shared.withUnsafeBytes({ $0.allSatisfy { $0 == 0 } }) else {
        throw BackupError(.usage, "the age recipient is a low-order X25519 point")
      }
      let wrapKey = shared.hkdfDerivedSymmetricKey(
        using: SHA256.self, salt: share + publicKeyBytes, sharedInfo: x25519Label, outputByteCount: 32)
      return AgeStanza(
        type: "X25519", arguments: [AgeBase64.encodeString(share)], body: try seal(fileKey, key: wrapKey))
    case .scrypt(let passphrase, let workFactor):
      guard (1...30).contains(workFactor) else {
        throw BackupError(.usage, "the scrypt work factor must be between 1 and 30, not \(workFactor)")
      }
      var salt = [UInt8](repeating: 0, count: 16)
      var rng = SystemRandomNumberGenerator()
      for i in salt.indices { salt[i] = rng.next() }
      let key = try scryptKey(passphrase: passphrase, salt: salt, workFactor: workFactor)
      return AgeStanza(
        type: "scrypt", arguments: [AgeBase64.encodeString(salt), String(workFactor)],
        body: try seal(fileKey, key: key))
    }
  }

  // MARK: Reading

  /// Unwraps the file key from one stanza with one identity: nil when the stanza is not for this
  /// identity; throws when the stanza is malformed.
  static func unwrap(_ stanza: AgeStanza, with identity: AgeIdentity) throws -> [UInt8]? {
    switch identity {
    case .x25519(let secretKey):
      guard stanza.type == "X25519" else { return nil }
      guard stanza.arguments.count == 1 else {
        throw AgeFailure.header("an X25519 stanza needs one argument")
      }
      guard let share = AgeBase64.decode(stanza.arguments[0].utf8), share.count == 32 else {
        throw AgeFailure.header("the X25519 share is not 32 canonically encoded bytes")
      }
      guard stanza.body.count == fileKeySize + tagSize else {
        throw AgeFailure.header("the X25519 stanza does not wrap a 16-byte file key")
      }
      guard let privateKey = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: secretKey),
        let peer = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: share)
      else { throw AgeFailure.header("the X25519 share is not a valid point") }
      guard let shared = try? privateKey.sharedSecretFromKeyAgreement(with: peer),
        !shared.withUnsafeBytes({ $0.allSatisfy { $0 == 0 } })
      else { throw AgeFailure.header("the X25519 share is a low-order point") }
      let wrapKey = shared.hkdfDerivedSymmetricKey(
        using: SHA256.self, salt: share + [UInt8](privateKey.publicKey.rawRepresentation),
        sharedInfo: x25519Label, outputByteCount: 32)
      return open(stanza.body, key: wrapKey)
    case .scrypt(let passphrase, let maxWorkFactor):
      guard stanza.type == "scrypt" else { return nil }
      guard stanza.arguments.count == 2 else {
        throw AgeFailure.header("an scrypt stanza needs two arguments")
      }
      guard let salt = AgeBase64.decode(stanza.arguments[0].utf8), salt.count == 16 else {
        throw AgeFailure.header("the scrypt salt is not 16 canonically encoded bytes")
      }
      let factorText = Array(stanza.arguments[1].utf8)
      guard let first = factorText.first, first >= UInt8(ascii: "1"), first <= UInt8(ascii: "9"),
        factorText.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
      else {
        throw AgeFailure.header(
          "the scrypt work factor is not a positive decimal number without leading zeros")
      }
      guard factorText.count <= 2, let workFactor = Int(stanza.arguments[1]), workFactor <= maxWorkFactor
      else {
        let shown = factorText.count <= 6 ? stanza.arguments[1] : "of \(factorText.count) digits"
        throw AgeFailure.header(
          "the scrypt work factor \(shown) is above the allowed maximum \(maxWorkFactor)")
      }
      guard stanza.body.count == fileKeySize + tagSize else {
        throw AgeFailure.header("the scrypt stanza does not wrap a 16-byte file key")
      }
      let key = try scryptKey(passphrase: passphrase, salt: salt, workFactor: workFactor)
      return open(stanza.body, key: key)
    }
  }
}

/// A parsed header: its stanzas, the MAC and where the payload starts.
struct AgeHeader {
  var stanzas: [AgeStanza]
  /// The header bytes up to and including "---".
  var macInput: [UInt8]
  var mac: [UInt8]
  /// Bytes from the start of the file to the first byte after the header's final newline.
  var length: Int

  /// Reads and parses the header at the start of `input`.
  static func read(from input: RandomAccessInput, counting bytesRead: inout Int64) throws -> AgeHeader {
    var buffer: [UInt8] = []
    var position = 0
    var eof = false
    func nextLine() throws -> ArraySlice<UInt8> {
      while true {
        if let nl = buffer[position...].firstIndex(of: 0x0A) {
          let line = buffer[position..<nl]
          position = nl + 1
          return line
        }
        if eof { throw AgeFailure.header(buffer.isEmpty ? "the file is empty" : "the header is truncated") }
        guard buffer.count < AgeFormat.maxHeaderSize else {
          throw AgeFailure.header("the header is too long")
        }
        var block = [UInt8](repeating: 0, count: 4096)
        let n = try block.withUnsafeMutableBytes { try input.read(at: Int64(buffer.count), into: $0) }
        bytesRead += Int64(n)
        if n == 0 { eof = true } else { buffer += block[0..<n] }
      }
    }
    func isArgumentCharacter(_ c: UInt8) -> Bool { c >= 33 && c <= 126 }

    guard try nextLine().elementsEqual(AgeFormat.versionLine) else {
      throw AgeFailure.header("not an age v1 file (unknown version line)")
    }
    var stanzas: [AgeStanza] = []
    while true {
      let lineStart = position
      let line = try nextLine()
      if line.starts(with: "---".utf8) {
        let parts = line.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].elementsEqual("---".utf8),
          let mac = AgeBase64.decode(parts[1]), mac.count == 32
        else { throw AgeFailure.header("the MAC line is malformed") }
        return AgeHeader(
          stanzas: stanzas, macInput: Array(buffer[0..<lineStart + 3]), mac: mac, length: position)
      }
      guard line.starts(with: "-> ".utf8) else { throw AgeFailure.header("unexpected line in the header") }
      let parts = line.dropFirst(3).split(separator: 0x20, omittingEmptySubsequences: false)
      for part in parts where part.isEmpty || !part.allSatisfy(isArgumentCharacter) {
        throw AgeFailure.header("a stanza argument is empty or has an invalid character")
      }
      var body: [UInt8] = []
      while true {
        let bodyLine = try nextLine()
        guard bodyLine.count <= 64 else {
          throw AgeFailure.header("a stanza body line is longer than 64 columns")
        }
        guard let decoded = AgeBase64.decode(bodyLine) else {
          throw AgeFailure.header("a stanza body is not canonical unpadded base64")
        }
        body += decoded
        if bodyLine.count < 64 { break }
      }
      stanzas.append(
        AgeStanza(
          type: String(decoding: parts[0], as: UTF8.self),
          arguments: parts.dropFirst().map { String(decoding: $0, as: UTF8.self) }, body: body))
    }
  }

  /// Finds the file key with the identities, then checks the MAC.
  func fileKey(identities: [AgeIdentity]) throws -> [UInt8] {
    if stanzas.contains(where: { $0.type == "scrypt" }) && stanzas.count != 1 {
      throw AgeFailure.header("an scrypt stanza must be the only stanza")
    }
    for identity in identities {
      for stanza in stanzas {
        if let key = try AgeFormat.unwrap(stanza, with: identity) {
          let expected = AgeFormat.headerMAC(fileKey: key, headerWithoutMAC: macInput)
          guard constantTimeEqual(expected, mac) else { throw AgeFailure.mac() }
          return key
        }
      }
    }
    throw AgeFailure.noMatch()
  }
}

func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
  guard a.count == b.count else { return false }
  var diff: UInt8 = 0
  for i in a.indices { diff |= a[i] ^ b[i] }
  return diff == 0
}
