import BackupModel
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// How the connection to the mail server is protected.
public enum SMTPSecurity: String, Codable, CaseIterable, Sendable {
  /// Plain connect, then `STARTTLS` (submission, port 587). The default.
  case starttls
  /// TLS from the first byte (SMTPS, port 465).
  case tls
  /// No TLS at all (a relay on localhost or a trusted network; must be chosen explicitly).
  case none

  /// The usual port of each kind.
  public var defaultPort: Int {
    switch self {
    case .starttls: return 587
    case .tls: return 465
    case .none: return 25
    }
  }
}

/// Everything `SMTPClient.send` needs; the password is already resolved (never logged).
public struct SMTPSettings: Sendable {
  public var host: String
  public var port: Int
  public var security: SMTPSecurity
  public var username: String?
  public var password: String?
  /// A PEM file of CA certificates trusted in addition to the system's.
  public var caFile: String?
  /// Connect timeout, and the longest wait for any one reply.
  public var timeoutSeconds: Double
  /// The name this client gives in EHLO (default: this machine's host name).
  public var clientName: String

  public init(
    host: String, port: Int? = nil, security: SMTPSecurity = .starttls, username: String? = nil,
    password: String? = nil, caFile: String? = nil, timeoutSeconds: Double = 30, clientName: String? = nil
  ) {
    self.host = host
    self.port = port ?? security.defaultPort
    self.security = security
    self.username = username
    self.password = password
    self.caFile = caFile
    self.timeoutSeconds = timeoutSeconds
    self.clientName = clientName ?? Self.localName()
  }

  /// `host:port` (IPv6 in brackets), as every message names the server.
  public var endpoint: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

  /// This machine's name if it is a plain DNS name, else `localhost` (EHLO's argument must be a
  /// domain or an address literal).
  static func localName() -> String {
    let name = ProcessInfo.processInfo.hostName
    func allowed(_ c: UInt8) -> Bool {
      (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D
        || c == 0x2E
    }
    let ok = !name.isEmpty && name.utf8.count < 200 && name.utf8.allSatisfy(allowed)
    return ok ? name : "localhost"
  }
}

/// An SMTP client on SwiftNIO (RFC 5321, 3207 STARTTLS, 4954 AUTH with PLAIN (4616) or LOGIN,
/// 8314 implicit TLS). Synchronous on the outside: `send` blocks the calling thread (never an
/// event loop thread) until the message is accepted or an error says why not. Every error is one
/// line naming the server (`host:port`) and, for a refusal, the server's reply code and text; no
/// error or log line ever contains the password or the AUTH exchange.
public enum SMTPClient {
  /// Delivers `message` to every address in `message.to`: connect, EHLO, STARTTLS + EHLO (or
  /// TLS from the start), AUTH when a username is set, MAIL, RCPT, DATA, QUIT.
  public static func send(_ message: EmailMessage, settings: SMTPSettings) throws {
    guard !message.to.isEmpty else { throw BackupError(.usage, "an email needs at least one recipient") }
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    defer { try? group.syncShutdownGracefully() }
    let tls = settings.security == .none ? nil : try makeTLSContext(settings)
    let session = try SMTPSession.connect(settings, tls: tls, group: group)
    defer { session.close() }
    try session.deliver(message)
  }

  /// Verification on (the system's trust store), plus the certificates of `caFile`.
  static func makeTLSContext(_ settings: SMTPSettings) throws -> NIOSSLContext {
    var config = TLSConfiguration.makeClientConfiguration()
    config.minimumTLSVersion = .tlsv12
    if let caFile = settings.caFile {
      let certificates: [NIOSSLCertificate]
      do {
        certificates = try NIOSSLCertificate.fromPEMFile(caFile)
      } catch {
        throw BackupError(
          .notFound, "cannot read CA certificates from \(caFile) (notifications.smtp.caFile)",
          hint: "it must be a readable PEM file (-----BEGIN CERTIFICATE-----)")
      }
      guard !certificates.isEmpty else {
        throw BackupError(.usage, "no certificate in \(caFile) (notifications.smtp.caFile)")
      }
      config.additionalTrustRoots = [.certificates(certificates)]
    }
    do {
      return try NIOSSLContext(configuration: config)
    } catch {
      throw BackupError(.failure, "cannot set up TLS for \(settings.endpoint): \(error)")
    }
  }
}

/// One connection: the channel, the reply handler and the dialog steps.
final class SMTPSession {
  let settings: SMTPSettings
  let channel: Channel
  /// Touched only on the channel's event loop.
  let handler: SMTPReplyHandler
  let tls: NIOSSLContext?
  var timeout: TimeAmount { .milliseconds(Int64(settings.timeoutSeconds * 1000)) }

  init(settings: SMTPSettings, channel: Channel, handler: SMTPReplyHandler, tls: NIOSSLContext?) {
    self.settings = settings
    self.channel = channel
    self.handler = handler
    self.tls = tls
  }

  /// The name SNI and certificate checks use: nil for an address literal (NIOSSL then checks
  /// the certificate against the connected IP address).
  static func serverName(_ host: String) -> String? {
    var v4 = in_addr()
    var v6 = in6_addr()
    let isAddress = inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    return isAddress ? nil : host
  }

  static func connect(_ settings: SMTPSettings, tls: NIOSSLContext?, group: EventLoopGroup) throws
    -> SMTPSession
  {
    let implicitTLS = settings.security == .tls ? tls : nil
    let name = serverName(settings.host)
    let handler = SMTPReplyHandler()
    let bootstrap = ClientBootstrap(group: group)
      .connectTimeout(.milliseconds(Int64(settings.timeoutSeconds * 1000)))
      .channelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          let ops = channel.pipeline.syncOperations
          if let implicitTLS {
            try ops.addHandler(NIOSSLClientHandler(context: implicitTLS, serverHostname: name))
          }
          try ops.addHandler(ByteToMessageHandler(SMTPReplyDecoder()))
          try ops.addHandler(handler)
        }
      }
    let channel: Channel
    do {
      channel = try bootstrap.connect(host: settings.host, port: settings.port).wait()
    } catch {
      throw SMTPSession.describe(error, settings: settings, step: "connecting")
    }
    return SMTPSession(settings: settings, channel: channel, handler: handler, tls: tls)
  }

  func close() {
    _ = try? channel.close().wait()
  }

  // MARK: the dialog

  func deliver(_ message: EmailMessage) throws {
    let greeting = try exchange(nil, step: "waiting for the greeting")
    try expect(greeting, [220], "greeted us with")
    var capabilities = try hello()
    if settings.security == .starttls {
      guard capabilities.has("STARTTLS") else {
        throw BackupError(
          .failure, "\(settings.endpoint) does not offer STARTTLS",
          hint:
            "for a port-465 server set notifications.smtp.tls=tls; only for a trusted relay, tls=none")
      }
      try expect(try exchange("STARTTLS", step: "STARTTLS"), [220], "refused STARTTLS:")
      try startTLS()
      capabilities = try hello()
    }
    if let username = settings.username {
      try authenticate(username: username, capabilities: capabilities)
    }
    try expect(
      try exchange("MAIL FROM:<\(message.from)>", step: "MAIL FROM"), [250],
      "refused the sender \(message.from):")
    for rcpt in message.to {
      try expect(
        try exchange("RCPT TO:<\(rcpt)>", step: "RCPT TO"), [250, 251], "refused the recipient \(rcpt):")
    }
    try expect(try exchange("DATA", step: "DATA"), [354], "refused DATA:")
    let data = EmailMessage.dataSection(message.rendered())
    try expect(try exchange(raw: data, step: "sending the message"), [250], "did not accept the message:")
    // the message is accepted: a failed QUIT changes nothing
    _ = try? exchange("QUIT", step: "QUIT")
  }

  struct Capabilities {
    var keywords: [String: [String]] = [:]
    func has(_ k: String) -> Bool { keywords[k] != nil }
    var authMechanisms: [String] { keywords["AUTH"] ?? [] }
  }

  /// EHLO (HELO when the server does not know EHLO, as RFC 5321 4.1.4 allows).
  func hello() throws -> Capabilities {
    let reply = try exchange("EHLO \(settings.clientName)", step: "EHLO")
    if reply.code == 250 {
      var caps = Capabilities()
      for line in reply.lines.dropFirst() {
        let words = line.uppercased().split(whereSeparator: { $0 == " " || $0 == "=" }).map(String.init)
        guard let first = words.first else { continue }
        caps.keywords[first, default: []] += words.dropFirst()
      }
      return caps
    }
    guard (500...504).contains(reply.code) else {
      try expect(reply, [250], "refused EHLO:")
      return Capabilities()
    }
    try expect(try exchange("HELO \(settings.clientName)", step: "HELO"), [250], "refused HELO:")
    return Capabilities()
  }

  func startTLS() throws {
    guard let tls else { return }
    let name = Self.serverName(settings.host)
    let noPlaintextLeft = try channel.eventLoop.submit { [channel, handler] in
      // anything the server sent after its 220 would be unprotected plaintext (RFC 3207 5)
      guard !handler.hasUnreadReplies else { return false }
      try channel.pipeline.syncOperations.addHandler(
        NIOSSLClientHandler(context: tls, serverHostname: name), position: .first)
      return true
    }.wait()
    guard noPlaintextLeft else {
      throw BackupError(.failure, "\(settings.endpoint) sent data after its STARTTLS answer; not continuing")
    }
  }

  /// AUTH PLAIN when offered, else AUTH LOGIN; a refusal names the server's reply.
  func authenticate(username: String, capabilities: Capabilities) throws {
    guard let password = settings.password else {
      throw BackupError(
        .usage, "notifications.smtp.username is set but there is no password",
        hint: "set notifications.smtp.password (e.g. to ${SMTP_PASSWORD})")
    }
    let offered = capabilities.authMechanisms
    func b64(_ s: String) -> String { Data(s.utf8).base64EncodedString() }
    let final: SMTPReply
    if offered.contains("PLAIN") {
      final = try exchange("AUTH PLAIN \(b64("\0\(username)\0\(password)"))", step: "AUTH PLAIN")
    } else if offered.contains("LOGIN") {
      let first = try exchange("AUTH LOGIN", step: "AUTH LOGIN")
      try expectAuth(first, [334], username: username)
      let second = try exchange(b64(username), step: "AUTH LOGIN")
      try expectAuth(second, [334], username: username)
      final = try exchange(b64(password), step: "AUTH LOGIN")
    } else {
      let why =
        offered.isEmpty
        ? "offers no AUTH (servers usually offer it only over TLS)"
        : "offers only AUTH \(offered.joined(separator: " ")) (this client speaks PLAIN and LOGIN)"
      throw BackupError(
        .failure, "\(settings.endpoint) \(why)",
        hint: "check notifications.smtp.tls, or remove notifications.smtp.username for a relay without login")
    }
    try expectAuth(final, [235], username: username)
  }

  func expectAuth(_ reply: SMTPReply, _ codes: Set<Int>, username: String) throws {
    guard !codes.contains(reply.code) else { return }
    throw BackupError(
      .failure, "\(settings.endpoint) refused the login as \(username): \(reply.summary)",
      hint: "check notifications.smtp.username and the password")
  }

  func expect(_ reply: SMTPReply, _ codes: Set<Int>, _ what: String) throws {
    guard !codes.contains(reply.code) else { return }
    throw BackupError(.failure, "\(settings.endpoint) \(what) \(reply.summary)")
  }

  // MARK: the wire

  func exchange(_ command: String?, step: String) throws -> SMTPReply {
    try exchange(raw: command.map { "\($0)\r\n" }, step: step)
  }

  func exchange(raw: String?, step: String) throws -> SMTPReply {
    let timeout = self.timeout
    do {
      return try channel.eventLoop.flatSubmit { [channel, handler] in
        let bytes = raw.map { channel.allocator.buffer(string: $0) }
        return handler.exchange(bytes, timeout: timeout, on: channel.eventLoop)
      }.wait()
    } catch {
      throw Self.describe(error, settings: settings, step: step)
    }
  }

  /// A NIO or TLS error in one line, naming the server and the step; never the password.
  static func describe(_ error: Error, settings: SMTPSettings, step: String) -> BackupError {
    let at = settings.endpoint
    let t = settings.timeoutSeconds
    let seconds = t == t.rounded() && t < 1e9 ? "\(Int(t))" : String(format: "%.1f", t)
    if let e = error as? BackupError { return e }
    if let e = error as? SMTPWireError {
      switch e {
      case .timeout:
        return BackupError(.failure, "no answer from \(at) within \(seconds) s (\(step))")
      case .closed:
        return BackupError(.failure, "\(at) closed the connection (\(step))")
      case .malformed(let what):
        return BackupError(.failure, "\(at) is not speaking SMTP: \(what) (\(step))")
      }
    }
    if let e = error as? NIOConnectionError {
      if e.dnsAError != nil || e.dnsAAAAError != nil {
        return BackupError(
          .failure, "cannot resolve the mail server's name \(settings.host)",
          hint: "check notifications.smtp.host")
      }
      if let first = e.connectionErrors.first { return describe(first.error, settings: settings, step: step) }
    }
    if let e = error as? IOError {
      switch e.errnoCode {
      case ECONNREFUSED:
        return BackupError(
          .failure, "connection refused by \(at)",
          hint: "is the mail server running? check notifications.smtp.host and .port")
      case ETIMEDOUT, EHOSTUNREACH, ENETUNREACH:
        return BackupError(.failure, "cannot reach \(at): \(String(cString: strerror(e.errnoCode)))")
      default:
        return BackupError(
          .failure, "connection to \(at) failed (\(step)): \(String(cString: strerror(e.errnoCode)))")
      }
    }
    if let e = error as? ChannelError, case .connectTimeout = e {
      return BackupError(.failure, "connecting to \(at) timed out after \(seconds) s")
    }
    if let e = error as? NIOSSLExtraError, e == .failedToValidateHostname {
      return BackupError(
        .failure, "TLS with \(at) failed: its certificate is not valid for \(settings.host)",
        hint: "use the name the certificate was issued for in notifications.smtp.host")
    }
    if let e = error as? NIOSSLError {
      let text = "\(e)"
      if text.contains("CERTIFICATE_VERIFY_FAILED") {
        return BackupError(
          .failure, "TLS with \(at) failed: the server's certificate is not trusted",
          hint: "for a private relay set notifications.smtp.caFile to a PEM file with its CA")
      }
      if text.contains("WRONG_VERSION_NUMBER") || text.contains("PACKET_LENGTH_TOO_LONG") {
        let hint =
          settings.security == .tls
          ? "is this a STARTTLS port (587)? then set notifications.smtp.tls=starttls"
          : "check notifications.smtp.tls and .port"
        return BackupError(.failure, "TLS with \(at) failed: the server does not speak TLS here", hint: hint)
      }
      return BackupError(.failure, "TLS with \(at) failed (\(step)): \(Self.oneLine(text))")
    }
    return BackupError(.failure, "SMTP with \(at) failed (\(step)): \(Self.oneLine("\(error)"))")
  }

  static func oneLine(_ s: String) -> String {
    String(s.map { $0.isNewline ? " " : $0 }.prefix(300))
  }
}
