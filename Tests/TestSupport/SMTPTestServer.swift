import Foundation

/// The mail server of scripts/smtp-test-server.sh, from the `AI_SHELL_TEST_SMTP_*` variables its
/// `env` verb prints (scripts/test.sh exports them). Delivered mail is read from its Maildir and
/// decoded by Python's `email` package, an implementation independent of ours.
public struct SMTPTestServer: Sendable {
  public let host: String
  /// STARTTLS, AUTH PLAIN and LOGIN after TLS.
  public let port: Int
  /// STARTTLS, AUTH LOGIN only.
  public let loginPort: Int
  /// Implicit TLS.
  public let tlsPort: Int
  public let user: String
  public let password: String
  /// The CA (PEM) that signed the server's certificate.
  public let caFile: String
  public let maildir: String

  /// The server, or nil (printing why the calling test is skipped) when the variables are unset.
  public static func fromEnvironment(_ test: String = #function) -> SMTPTestServer? {
    let env = ProcessInfo.processInfo.environment
    func v(_ name: String) -> String? { env["AI_SHELL_TEST_SMTP_\(name)"].flatMap { $0.isEmpty ? nil : $0 } }
    guard let host = v("HOST"), let port = v("PORT").flatMap(Int.init),
      let loginPort = v("LOGIN_PORT").flatMap(Int.init),
      let tlsPort = env["AI_SHELL_TEST_SMTPS_PORT"].flatMap(Int.init),
      let user = v("USER"), let password = v("PASSWORD"), let ca = v("CA"), let maildir = v("MAILDIR")
    else {
      print("skipped: AI_SHELL_TEST_SMTP_* not set, start scripts/smtp-test-server.sh (\(test))")
      return nil
    }
    return SMTPTestServer(
      host: host, port: port, loginPort: loginPort, tlsPort: tlsPort, user: user, password: password,
      caFile: ca,
      maildir: maildir)
  }

  /// A delivered message, decoded.
  public struct Mail: Sendable {
    public var subject: String
    public var from: String
    public var to: String
    public var body: String
    /// Header lines as stored (`Name: value`).
    public var rawHeaders: String
  }

  /// The delivered message whose subject contains `token`, waiting up to `seconds` for it.
  public func mail(subjectContaining token: String, seconds: Double = 10) throws -> Mail? {
    let deadline = Date().addingTimeInterval(seconds)
    repeat {
      for file in (try? FileManager.default.contentsOfDirectory(atPath: maildir + "/new")) ?? [] {
        let path = maildir + "/new/" + file
        let mail = try Self.decode(path)
        if mail.subject.contains(token) { return mail }
      }
      usleep(100_000)
    } while Date() < deadline
    return nil
  }

  /// Parses one stored message with Python's `email` package (MIME and RFC 2047 decoding).
  public static func decode(_ path: String) throws -> Mail {
    let script = """
      import json, sys
      from email import policy
      from email.parser import BytesParser
      raw = open(sys.argv[1], 'rb').read()
      m = BytesParser(policy=policy.default).parsebytes(raw)
      head = raw.split(b'\\n\\n', 1)[0].decode('utf-8', 'replace')
      print(json.dumps({'subject': str(m['subject']), 'from': str(m['from']), 'to': str(m['to']),
                        'body': m.get_content(), 'headers': head}))
      """
    let r = try runProcess("python3", ["-c", script, path])
    guard r.status == 0, let o = try JSONSerialization.jsonObject(with: r.stdout) as? [String: String] else {
      throw RunnerError("cannot decode \(path): \(String(decoding: r.stderr, as: UTF8.self))")
    }
    return Mail(
      subject: o["subject"] ?? "", from: o["from"] ?? "", to: o["to"] ?? "", body: o["body"] ?? "",
      rawHeaders: o["headers"] ?? "")
  }
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then closed again).
public func closedLocalPort() -> Int {
  let s = localSocket(listening: false)
  close(s.fd)
  return s.port
}

/// A TCP socket bound to 127.0.0.1 on a free port. `listening`: it listens but never accepts, so
/// connecting works and no greeting ever comes (for timeout tests). Close it with `close(fd)`.
public func localSocket(listening: Bool) -> (fd: Int32, port: Int) {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  var addr = sockaddr_in()
  addr.sin_family = sa_family_t(AF_INET)
  addr.sin_addr.s_addr = inet_addr("127.0.0.1")
  addr.sin_port = 0
  var len = socklen_t(MemoryLayout<sockaddr_in>.size)
  _ = withUnsafePointer(to: &addr) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) }
  }
  if listening { listen(fd, 4) }
  _ = withUnsafeMutablePointer(to: &addr) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
  }
  return (fd, Int(UInt16(bigEndian: addr.sin_port)))
}
