import BackupModel
import Foundation

/// A plain-text email: what `SMTPClient.send` delivers. `rendered()` gives the RFC 5322 text
/// (CRLF line ends, headers free of line breaks, a UTF-8 body), `dataSection()` the same
/// dot-stuffed and terminated for the SMTP DATA command.
public struct EmailMessage: Sendable {
  public var from: String
  public var to: [String]
  public var subject: String
  public var body: String
  public var date: Date
  /// Extra headers (name, value), e.g. `X-AI-Shell-Schedule`.
  public var headers: [(String, String)]

  public init(
    from: String, to: [String], subject: String, body: String, date: Date = Date(),
    headers: [(String, String)] = []
  ) {
    self.from = from
    self.to = to
    self.subject = subject
    self.body = body
    self.date = date
    self.headers = headers
  }

  /// The message as sent (before dot-stuffing): headers, a blank line, the body; CRLF throughout.
  public func rendered(messageID: String = UUID().uuidString.lowercased()) -> String {
    let domain = Self.domain(of: from) ?? "localhost"
    var lines = [
      "From: \(Self.headerValue(from))",
      "To: \(to.map(Self.headerValue).joined(separator: ", "))",
      "Subject: \(Self.encodedWord(Self.headerValue(subject)))",
      "Date: \(Self.rfc5322Date(date))",
      "Message-ID: <\(messageID)@\(domain)>",
      // RFC 3834: an automatic message; well-behaved auto-responders do not answer it
      "Auto-Submitted: auto-generated",
      "MIME-Version: 1.0",
      "Content-Type: text/plain; charset=utf-8",
    ]
    for (name, value) in headers { lines.append("\(Self.headerValue(name)): \(Self.headerValue(value))") }
    let bodyLines = Self.lines(of: body)
    let plain = bodyLines.allSatisfy { line in line.utf8.count <= 998 && line.utf8.allSatisfy { $0 < 0x80 } }
    if plain {
      lines.append("Content-Transfer-Encoding: 7bit")
      lines.append("")
      lines += bodyLines
    } else {
      lines.append("Content-Transfer-Encoding: base64")
      lines.append("")
      // text is base64-encoded in its canonical form: CRLF line ends (RFC 2045 6.8)
      let b64 = Data((bodyLines.joined(separator: "\r\n") + "\r\n").utf8).base64EncodedString()
      var rest = Substring(b64)
      while !rest.isEmpty {
        lines.append(String(rest.prefix(76)))
        rest = rest.dropFirst(76)
      }
    }
    return lines.joined(separator: "\r\n") + "\r\n"
  }

  /// What follows a `354` answer to DATA: every line ending in CRLF, a line that starts with `.`
  /// gets a second one (RFC 5321 4.5.2), and the terminating `.` line.
  public static func dataSection(_ rendered: String) -> String {
    var out = ""
    out.reserveCapacity(rendered.utf8.count + 16)
    var text = rendered
    // one Character: "\r\n" is a single grapheme cluster
    if let last = text.last, last == "\r\n" || last == "\n" || last == "\r" { text.removeLast() }
    for line in lines(of: text) {
      if line.hasPrefix(".") { out += "." }
      out += line
      out += "\r\n"
    }
    return out + ".\r\n"
  }

  /// Lines split on LF, CRLF or a lone CR (so no bare CR or LF can reach the wire).
  static func lines(of text: String) -> [String] {
    var result: [String] = []
    var current = ""
    var lastWasCR = false
    for scalar in text.unicodeScalars {
      if scalar == "\r" {
        result.append(current)
        current = ""
        lastWasCR = true
        continue
      }
      if scalar == "\n" {
        if !lastWasCR { result.append(current) }
        current = ""
        lastWasCR = false
        continue
      }
      lastWasCR = false
      current.unicodeScalars.append(scalar)
    }
    result.append(current)
    return result
  }

  /// A header value on one line (line breaks and control characters become spaces), at most
  /// 900 bytes, so an error message can never inject a header or break the 998-byte limit.
  static func headerValue(_ text: String) -> String {
    var s = String(
      String.UnicodeScalarView(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? " " : $0 }))
    while s.utf8.count > 900 { s.removeLast() }
    return s.trimmingCharacters(in: .whitespaces)
  }

  /// RFC 2047: a non-ASCII subject as `=?utf-8?B?...?=` words (each at most 75 characters).
  static func encodedWord(_ text: String) -> String {
    guard text.utf8.contains(where: { $0 >= 0x80 }) else { return text }
    var words: [String] = []
    var chunk = ""
    for ch in text {
      // 45 bytes of UTF-8 become 60 base64 characters: with the 12 of the wrapper, under 75
      if chunk.utf8.count + ch.utf8.count > 45 {
        words.append("=?utf-8?B?\(Data(chunk.utf8).base64EncodedString())?=")
        chunk = ""
      }
      chunk.append(ch)
    }
    if !chunk.isEmpty { words.append("=?utf-8?B?\(Data(chunk.utf8).base64EncodedString())?=") }
    return words.joined(separator: "\r\n ")
  }

  /// `Sat, 28 Nov 2026 10:40:02 +0000`.
  static func rfc5322Date(_ date: Date) -> String {
    let f = DateFormatter()
    f.locale = Locale(identifier: "en_US_POSIX")
    f.timeZone = TimeZone(identifier: "UTC")
    f.dateFormat = "EEE, dd MMM yyyy HH:mm:ss Z"
    return f.string(from: date)
  }

  static func domain(of address: String) -> String? {
    guard let at = address.lastIndex(of: "@") else { return nil }
    let d = address[address.index(after: at)...].filter { $0 != ">" }
    return d.isEmpty ? nil : String(d)
  }

  /// Checks a bare address (`local@domain`, no display name): no spaces, angle brackets, line
  /// breaks or control characters, one `@` with text on both sides.
  public static func validateAddress(_ address: String, what: String) throws {
    func bad(_ why: String) -> BackupError {
      BackupError(
        .usage, "invalid \(what) \"\(headerValue(address))\": \(why)",
        hint: "give a plain address such as ops@example.com")
    }
    guard !address.isEmpty else { throw bad("it is empty") }
    guard
      !address.unicodeScalars.contains(where: {
        $0.value <= 0x20 || $0.value == 0x7F || "<>(),;:\"[]\\".unicodeScalars.contains($0)
      })
    else { throw bad("it contains spaces, quotes, brackets or separators") }
    let parts = address.split(separator: "@", omittingEmptySubsequences: false)
    guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
      throw bad("it needs exactly one @ with a name before and a domain after it")
    }
    guard address.utf8.count <= 254 else { throw bad("it is longer than 254 characters") }
  }
}
