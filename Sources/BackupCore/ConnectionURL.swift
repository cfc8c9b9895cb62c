import BackupModel
import Foundation

/// A database URL split into its parts: `scheme://[user[:password]@]hosts[/database][?query]`,
/// `sqlite:///abs/path.db`, or a plain SQLite path. Parsed by hand so that `${ENV_VAR}`
/// references (not valid in RFC 3986) survive anywhere in it.
public struct ConnectionURL: Sendable, Equatable {
  /// The engine family: sqlite, postgres, mysql, mariadb or mongodb.
  public var engine: String
  public var scheme: String
  public var user: String?
  /// The inline password, percent-decoded.
  public var password: String?
  /// `host[:port]`, comma-separated for MongoDB replica sets.
  public var hosts: String
  /// The database (or, for SQLite, the absolute file path).
  public var database: String
  public var query: String?

  static let engines: [String: String] = [
    "sqlite": "sqlite", "sqlite3": "sqlite", "file": "sqlite",
    "postgres": "postgres", "postgresql": "postgres",
    "mysql": "mysql", "mariadb": "mariadb",
    "mongodb": "mongodb", "mongodb+srv": "mongodb",
  ]

  public static func parse(_ text: String) throws -> ConnectionURL {
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    guard !trimmed.isEmpty else { throw BackupError(.usage, "the database URL is empty") }
    guard let sep = trimmed.range(of: "://") else {
      // a plain path is a SQLite file
      return ConnectionURL(
        engine: "sqlite", scheme: "sqlite", user: nil, password: nil, hosts: "",
        database: BackupDirectory.absolute(trimmed), query: nil)
    }
    let scheme = trimmed[..<sep.lowerBound].lowercased()
    guard let engine = engines[scheme] else {
      throw BackupError(
        .usage, "unknown database URL scheme \"\(scheme)\"",
        hint: "use sqlite://, postgres://, mysql://, mariadb://, mongodb:// or a SQLite file path")
    }
    var rest = String(trimmed[sep.upperBound...])
    var query: String?
    if let q = rest.firstIndex(of: "?") {
      query = String(rest[rest.index(after: q)...])
      rest = String(rest[..<q])
    }
    if engine == "sqlite" {
      guard rest.hasPrefix("/") else {
        throw BackupError(.usage, "\(scheme):// URL needs an absolute path (sqlite:///abs/path.db)")
      }
      return ConnectionURL(
        engine: engine, scheme: scheme, user: nil, password: nil, hosts: "",
        database: BackupDirectory.absolute(rest.removingPercentEncoding ?? rest), query: query)
    }
    var authority = rest
    var database = ""
    if let slash = rest.firstIndex(of: "/") {
      authority = String(rest[..<slash])
      database = String(rest[rest.index(after: slash)...])
    }
    var user: String?
    var password: String?
    if let at = authority.lastIndex(of: "@") {
      let info = String(authority[..<at])
      authority = String(authority[authority.index(after: at)...])
      if let colon = info.firstIndex(of: ":") {
        user = String(info[..<colon]).removingPercentEncoding ?? String(info[..<colon])
        let p = String(info[info.index(after: colon)...])
        password = p.removingPercentEncoding ?? p
      } else {
        user = info.removingPercentEncoding ?? info
      }
    }
    guard !authority.isEmpty else {
      throw BackupError(
        .usage, "\(scheme):// URL has no host", hint: "e.g. \(scheme)://user@localhost/dbname")
    }
    return ConnectionURL(
      engine: engine, scheme: scheme, user: user, password: password, hosts: authority,
      database: database.removingPercentEncoding ?? database, query: query)
  }

  /// The URL text, with the password as given (`includePassword`), as `***`, or left out.
  public func text(password mode: PasswordMode) -> String {
    if engine == "sqlite" {
      return "sqlite://" + database + (query.map { "?\($0)" } ?? "")
    }
    var s = scheme + "://"
    if let user {
      s += encode(user)
      if let password {
        switch mode {
        case .include: s += ":" + encode(password)
        case .redact: s += ":***"
        case .omit: break
        }
      }
      s += "@"
    }
    s += hosts
    if !database.isEmpty { s += "/" + encode(database) }
    if let query { s += "?" + query }
    return s
  }

  public enum PasswordMode: Sendable { case include, redact, omit }

  private func encode(_ s: String) -> String {
    var allowed = CharacterSet.urlUserAllowed
    allowed.remove(charactersIn: ":@/?#")
    allowed.insert(charactersIn: "${}")
    return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
  }

  /// Connection names: letters, digits, `-`, `_`, `.`; not starting with `.` or `-`; at most 64.
  public static func validateName(_ name: String) throws {
    try validateConfigName(name, kind: "connection")
  }

  /// Checks a URL as stored in the config: with `${VAR}` references only the scheme can be
  /// checked (the rest is known at use time).
  public static func validateStored(_ text: String) throws {
    guard text.contains("${") else {
      _ = try parse(text)
      return
    }
    if let sep = text.range(of: "://") {
      let scheme = text[..<sep.lowerBound].lowercased()
      guard engines[scheme] != nil else {
        throw BackupError(.usage, "unknown database URL scheme \"\(scheme)\"")
      }
    }
  }

  /// Replaces `${NAME}` with the environment's value; a missing variable is a usage error.
  public static func expandVariables(
    _ text: String, environment: [String: String], what: String = "the connection URL"
  ) throws -> String {
    var out = ""
    var rest = Substring(text)
    while let start = rest.range(of: "${") {
      out += rest[..<start.lowerBound]
      guard let end = rest[start.upperBound...].firstIndex(of: "}") else {
        throw BackupError(.usage, "unterminated ${ in \(what)")
      }
      let name = String(rest[start.upperBound..<end])
      guard let value = environment[name] else {
        throw BackupError(
          .usage, "environment variable \(name) is not set", hint: "\(what) refers to ${\(name)}")
      }
      out += value
      rest = rest[rest.index(after: end)...]
    }
    return out + rest
  }

  /// Any URL-looking text with an inline password replaced by `***` (for messages and listings).
  public static func redact(_ text: String) -> String {
    if let parsed = try? parse(text) {
      return parsed.password == nil ? text : parsed.text(password: .redact)
    }
    // unparsable: still hide whatever sits between "user:" and "@"
    guard let sep = text.range(of: "://") else { return text }
    let rest = text[sep.upperBound...]
    let authority = rest.prefix { $0 != "/" && $0 != "?" }
    guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else {
      return text
    }
    return String(text[..<text.index(after: colon)]) + "***" + String(text[at...])
  }

  /// The engine a stored URL names (also with `${VAR}` references), or nil.
  public static func engine(ofStored text: String) -> String? {
    guard let sep = text.range(of: "://") else { return "sqlite" }
    return engines[text[..<sep.lowerBound].lowercased()]
  }
}

/// Names of connections and schedules (they become file names: `secrets/<name>.password`,
/// `.schedule-<name>.lock`): ASCII letters, digits, `-`, `_`, `.`; not first `.` or `-`; at most 64.
func validateConfigName(_ name: String, kind: String) throws {
  let ok =
    !name.isEmpty && name.count <= 64 && !name.hasPrefix(".") && !name.hasPrefix("-")
    && name.unicodeScalars.allSatisfy {
      ($0.value < 128 && CharacterSet.alphanumerics.contains($0)) || "-_.".unicodeScalars.contains($0)
    }
  guard ok else {
    throw BackupError(
      .usage, "invalid \(kind) name \"\(name)\"",
      hint: "use letters, digits, -, _ and . (not first), at most 64 characters")
  }
}
