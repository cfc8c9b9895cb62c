import BackupModel
import Foundation
import TestSupport
import Testing

@testable import BackupNotify

// The delivery tests need scripts/smtp-test-server.sh (aiosmtpd on 127.0.0.1); scripts/test.sh
// starts it and exports AI_SHELL_TEST_SMTP_*. Without it they print why and return.

func message(_ token: String, body: String = "hello\n") -> EmailMessage {
  EmailMessage(
    from: "backup@example.com", to: ["ops@example.com", "dba@example.com"], subject: "test \(token)",
    body: body)
}

func sendError(_ m: EmailMessage, _ settings: SMTPSettings) -> String? {
  do {
    try SMTPClient.send(m, settings: settings)
    return nil
  } catch {
    return "\(error)"
  }
}

@Suite struct SMTPDeliveryTests {
  @Test func starttlsWithAuthPlainDeliversTheMessageIntact() throws {
    guard let server = SMTPTestServer.fromEnvironment() else { return }
    let token = UUID().uuidString
    // lines a careless client would break: leading dots (one alone ends DATA), bare CR/LF ends
    let body = "Schedule: nightly\n.hidden line\n.\n..two dots\r\nwindows line\rold mac line\nend"
    let settings = SMTPSettings(
      host: server.host, port: server.port, security: .starttls, username: server.user,
      password: server.password,
      caFile: server.caFile)
    try SMTPClient.send(message(token, body: body), settings: settings)
    let mail = try #require(try server.mail(subjectContaining: token))
    #expect(mail.subject == "test \(token)")
    #expect(mail.from == "backup@example.com")
    #expect(mail.to == "ops@example.com, dba@example.com")
    #expect(
      mail.body == "Schedule: nightly\n.hidden line\n.\n..two dots\nwindows line\nold mac line\nend\n")
    #expect(mail.rawHeaders.contains("Auto-Submitted: auto-generated"))
    // aiosmtpd records the envelope: both recipients got it
    #expect(mail.rawHeaders.contains("X-RcptTo: ops@example.com, dba@example.com"))
  }

  @Test func nonASCIISubjectAndBodyArriveDecoded() throws {
    guard let server = SMTPTestServer.fromEnvironment() else { return }
    let token = UUID().uuidString
    let subject = "Sicherung fehlgeschlagen: Größe ∞ \(token) " + String(repeating: "é", count: 40)
    let body = "Fehler: Datei „app.db“ nicht gefunden\n" + String(repeating: "ü", count: 700)
    let m = EmailMessage(from: "backup@example.com", to: ["ops@example.com"], subject: subject, body: body)
    try SMTPClient.send(
      m,
      settings: SMTPSettings(
        host: server.host, port: server.port, username: server.user, password: server.password,
        caFile: server.caFile))
    let mail = try #require(try server.mail(subjectContaining: token))
    #expect(mail.subject == subject)
    // base64 carries the canonical CRLF line ends; Python's decoder leaves them as they are
    #expect(mail.body.replacingOccurrences(of: "\r\n", with: "\n") == body + "\n")
  }

  @Test func authLoginIsUsedWhenTheServerOffersOnlyLogin() throws {
    guard let server = SMTPTestServer.fromEnvironment() else { return }
    let token = UUID().uuidString
    try SMTPClient.send(
      message(token),
      settings: SMTPSettings(
        host: server.host, port: server.loginPort, username: server.user, password: server.password,
        caFile: server.caFile))
    #expect(try server.mail(subjectContaining: token) != nil)
    // and a wrong password through LOGIN names the reply too
    let error = sendError(
      message(token),
      SMTPSettings(
        host: server.host, port: server.loginPort, username: server.user, password: "nope",
        caFile: server.caFile))
    #expect(error?.contains("refused the login as \(server.user): 535") == true, "\(error ?? "")")
  }

  @Test func implicitTLSDelivers() throws {
    guard let server = SMTPTestServer.fromEnvironment() else { return }
    let token = UUID().uuidString
    try SMTPClient.send(
      message(token),
      settings: SMTPSettings(
        host: server.host, port: server.tlsPort, security: .tls, username: server.user,
        password: server.password,
        caFile: server.caFile))
    #expect(try server.mail(subjectContaining: token) != nil)
  }

  @Test func aHostNameIsCheckedAgainstTheCertificate() throws {
    guard let server = SMTPTestServer.fromEnvironment() else { return }
    // the test certificate names localhost and 127.0.0.1
    let token = UUID().uuidString
    try SMTPClient.send(
      message(token),
      settings: SMTPSettings(
        host: "localhost", port: server.tlsPort, security: .tls, username: server.user,
        password: server.password,
        caFile: server.caFile))
    #expect(try server.mail(subjectContaining: token) != nil)
  }

  @Test func aWrongPasswordNamesTheServersReplyAndNotThePassword() throws {
    guard let server = SMTPTestServer.fromEnvironment() else { return }
    let secret = "wrong-\(UUID().uuidString)"
    let error = try #require(
      sendError(
        message("x"),
        SMTPSettings(
          host: server.host, port: server.port, username: server.user, password: secret, caFile: server.caFile
        )))
    #expect(
      error
        == "\(server.host):\(server.port) refused the login as \(server.user): 535 5.7.8 Authentication credentials invalid; check notifications.smtp.username and the password"
    )
    #expect(!error.contains(secret))
    #expect(!error.contains(Data(secret.utf8).base64EncodedString()))
  }

  @Test func anUntrustedCertificateIsRefusedWithoutCAFile() throws {
    guard let server = SMTPTestServer.fromEnvironment() else { return }
    // three times each: the handshake fails fast, and the error must still be the TLS one (not
    // "closed") however the close and the next command race
    for (port, security) in [(server.port, SMTPSecurity.starttls), (server.tlsPort, .tls)] + [
      (server.port, .starttls), (server.tlsPort, .tls), (server.port, .starttls), (server.tlsPort, .tls),
    ] {
      let error = sendError(
        message("untrusted"),
        SMTPSettings(
          host: server.host, port: port, security: security, username: server.user, password: server.password)
      )
      #expect(
        error?.hasPrefix("TLS with \(server.host):\(port) failed: the server's certificate is not trusted")
          == true,
        "\(error ?? "delivered")")
    }
  }

  @Test func starttlsIsRequiredByThisServerSoPlainIsRefused() throws {
    guard let server = SMTPTestServer.fromEnvironment() else { return }
    // without TLS this server offers no AUTH, and refuses MAIL until STARTTLS
    let withLogin = sendError(
      message("plain"),
      SMTPSettings(
        host: server.host, port: server.port, security: .none, username: server.user, password: "x"))
    #expect(withLogin?.contains("offers no AUTH") == true, "\(withLogin ?? "")")
    let anonymous = sendError(
      message("plain"), SMTPSettings(host: server.host, port: server.port, security: .none))
    #expect(anonymous?.contains("refused the sender backup@example.com: 530") == true, "\(anonymous ?? "")")
  }

  @Test func implicitTLSAgainstAPlainPortSaysSo() throws {
    guard let server = SMTPTestServer.fromEnvironment() else { return }
    let error = sendError(
      message("x"), SMTPSettings(host: server.host, port: server.port, security: .tls, caFile: server.caFile))
    #expect(error?.hasPrefix("TLS with \(server.host):\(server.port) failed") == true, "\(error ?? "")")
  }
}

@Suite struct SMTPFailureTests {
  @Test func aServerThatIsDownGivesConnectionRefusedWithHostAndPort() throws {
    let port = closedLocalPort()
    let error = sendError(message("x"), SMTPSettings(host: "127.0.0.1", port: port, security: .starttls))
    #expect(
      error
        == "connection refused by 127.0.0.1:\(port); is the mail server running? check notifications.smtp.host and .port"
    )
  }

  @Test func aSilentServerTimesOut() throws {
    let listener = localSocket(listening: true)
    defer { close(listener.fd) }
    let started = Date()
    let error = sendError(
      message("x"), SMTPSettings(host: "127.0.0.1", port: listener.port, security: .none, timeoutSeconds: 1))
    #expect(error == "no answer from 127.0.0.1:\(listener.port) within 1 s (waiting for the greeting)")
    #expect(Date().timeIntervalSince(started) < 10)
  }

  @Test func aCAFileThatIsNotPEMIsNamed() throws {
    let dir = TempDir("smtp")
    let bad = dir.file("ca.pem")
    try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: bad))
    let error = sendError(message("x"), SMTPSettings(host: "127.0.0.1", port: closedLocalPort(), caFile: bad))
    #expect(error?.hasPrefix("cannot read CA certificates from \(bad)") == true, "\(error ?? "")")
  }
}

@Suite struct EmailFormatTests {
  @Test func dataSectionStuffsDotsAndUsesCRLFOnly() {
    let text = EmailMessage.dataSection("a\n.b\r\n.\rc\n..d\r\n")
    #expect(text == "a\r\n..b\r\n..\r\nc\r\n...d\r\n.\r\n")
  }

  @Test func headersCannotBeInjectedThroughTheSubject() {
    let m = EmailMessage(
      from: "a@example.com", to: ["b@example.com"], subject: "failed: x\r\nBcc: victim@example.com", body: "b"
    )
    let rendered = m.rendered()
    #expect(rendered.contains("Subject: failed: x  Bcc: victim@example.com\r\n"))
    #expect(!rendered.contains("\r\nBcc:"))
    let headerBlock = rendered.components(separatedBy: "\r\n\r\n")[0]
    #expect(headerBlock.split(separator: "\r\n").allSatisfy { $0.utf8.count <= 998 })
  }

  @Test func asciiBodiesGo7BitAndOthersBase64() {
    let ascii = EmailMessage(from: "a@example.com", to: ["b@example.com"], subject: "s", body: "plain")
    #expect(ascii.rendered().contains("Content-Transfer-Encoding: 7bit\r\n\r\nplain\r\n"))
    let utf8 = EmailMessage(from: "a@example.com", to: ["b@example.com"], subject: "s", body: "Größe")
    #expect(
      utf8.rendered().contains(
        "Content-Transfer-Encoding: base64\r\n\r\n\(Data("Größe\r\n".utf8).base64EncodedString())\r\n"))
  }

  @Test func addressesAreChecked() throws {
    try EmailMessage.validateAddress("ops@example.com", what: "address")
    for bad in [
      "", "ops", "@example.com", "ops@", "a@b@c", "ops @example.com", "<ops@example.com>", "o\r\n@x.y",
    ] {
      #expect(throws: BackupError.self) { try EmailMessage.validateAddress(bad, what: "address") }
    }
  }
}
