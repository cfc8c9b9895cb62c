import BackupModel
import CMariaDB
import Foundation

/// A `mysql://` or `mariadb://` URL taken apart:
/// `mysql://user:password@host:port/database?defaults-file=/path&ssl-ca=/path&...`.
/// The password never reaches a message, a child's argv or a manifest.
struct MyURL {
  var user: String?
  var password: String?
  var host: String?
  var port: UInt32
  var database: String?
  /// Query options (`defaults-file`, `socket`, `ssl`, `ssl-ca`, `ssl-cert`, `ssl-key`,
  /// `ssl-verify-server-cert`, `connect-timeout`).
  var options: [String: String]

  static let knownOptions: Set<String> = [
    "defaults-file", "socket", "ssl", "ssl-ca", "ssl-capath", "ssl-cert", "ssl-key", "ssl-cipher",
    "ssl-verify-server-cert", "connect-timeout",
  ]

  init(_ text: String) throws {
    let usage = "use mysql://user[:password]@host[:port]/database (or mariadb://...)"
    guard let scheme = text.range(of: "://"),
      ["mysql", "mariadb"].contains(text[..<scheme.lowerBound].lowercased())
    else {
      throw BackupError(.usage, "not a MySQL/MariaDB URL: \(MyURL.redact(text))", hint: usage)
    }
    // URLComponents wants a scheme it can parse; the authority rules are the same
    guard let c = URLComponents(string: "mysql" + text[scheme.lowerBound...]) else {
      throw BackupError(.usage, "invalid MySQL/MariaDB URL: \(MyURL.redact(text))", hint: usage)
    }
    user = c.user.flatMap { $0.isEmpty ? nil : $0 }
    password = c.password
    host = c.host.flatMap { $0.isEmpty ? nil : $0 }
    port = UInt32(c.port ?? 0)
    let path = c.path.hasPrefix("/") ? String(c.path.dropFirst()) : c.path
    database = path.isEmpty ? nil : path
    var options: [String: String] = [:]
    for item in c.queryItems ?? [] {
      let key = item.name.lowercased().replacingOccurrences(of: "_", with: "-")
      guard MyURL.knownOptions.contains(key) else {
        throw BackupError(
          .usage, "unknown option \"\(item.name)\" in the MySQL/MariaDB URL",
          hint: "known: " + MyURL.knownOptions.sorted().joined(separator: ", "))
      }
      options[key] = item.value ?? ""
    }
    self.options = options
  }

  /// `host:port/database` for messages (never the password).
  var endpoint: String {
    let h = host ?? "localhost"
    let p = port == 0 ? "3306" : String(port)
    return "\(h):\(p)/\(database ?? "")"
  }

  /// The URL text with another database (password kept: used only to connect).
  func text(database db: String?) -> String {
    var c = URLComponents()
    c.scheme = "mysql"
    c.user = user
    c.password = password
    c.host = host
    if port != 0 { c.port = Int(port) }
    c.path = "/" + (db ?? "")
    if !options.isEmpty {
      c.queryItems = options.keys.sorted().map { URLQueryItem(name: $0, value: options[$0]) }
    }
    return c.string ?? ""
  }

  /// Removes the password from a URL (and from anything quoting one).
  static func redact(_ text: String) -> String { ConnInfo.redact(text) }
}

/// A statement that failed on the server.
struct MyStatementError: Error {
  var code: UInt32
  var message: String
}

enum MyLibrary {
  /// `mysql_library_init` is a macro: call `mysql_server_init` once per process.
  static let ready: Bool = mysql_server_init(0, nil, nil) == 0
}

/// Quotes an identifier with backticks (backticks doubled).
func myIdent(_ s: String) -> String { "`" + s.replacingOccurrences(of: "`", with: "``") + "`" }

/// A string literal that reads back the same whatever the sql_mode (quote and backslash escaped).
func myString(_ s: String) -> String {
  "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
}

/// One libmariadb connection. Blocking; used from one thread at a time.
final class MyConnection {
  let mysql: UnsafeMutablePointer<MYSQL>
  let url: MyURL
  var endpoint: String { url.endpoint }

  /// Connects; `database: false` connects without selecting the URL's database.
  init(_ url: MyURL, selectDatabase: Bool = true) throws {
    self.url = url
    guard MyLibrary.ready, let m = mysql_init(nil) else {
      throw BackupError(.database, "cannot initialise the MariaDB client library")
    }
    // the usual client conventions: [client] in the option files (~/.my.cnf), an explicit
    // defaults file, then what the URL says
    _ = mysql_options(m, MYSQL_READ_DEFAULT_GROUP, "client")
    if let f = url.options["defaults-file"] { _ = mysql_options(m, MYSQL_READ_DEFAULT_FILE, f) }
    _ = mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4")
    var timeout = UInt32(url.options["connect-timeout"].flatMap { UInt32($0) } ?? 10)
    _ = mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &timeout)
    for (key, option) in [
      ("ssl-ca", MYSQL_OPT_SSL_CA), ("ssl-capath", MYSQL_OPT_SSL_CAPATH), ("ssl-cert", MYSQL_OPT_SSL_CERT),
      ("ssl-key", MYSQL_OPT_SSL_KEY), ("ssl-cipher", MYSQL_OPT_SSL_CIPHER),
    ] {
      if let v = url.options[key] { _ = mysql_options(m, option, v) }
    }
    func flag(_ key: String) -> Bool? {
      url.options[key].map { ["", "1", "true", "yes", "on", "required"].contains($0.lowercased()) }
    }
    if var on = flag("ssl").map({ CChar($0 ? 1 : 0) }) { _ = mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &on) }
    if var on = flag("ssl-verify-server-cert").map({ CChar($0 ? 1 : 0) }) {
      _ = mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on)
    }
    let password = url.password ?? ProcessInfo.processInfo.environment["MYSQL_PWD"]
    let db = selectDatabase ? url.database : nil
    guard
      mysql_real_connect(m, url.host, url.user, password, db, url.port, url.options["socket"], 0) != nil
    else {
      let code = mysql_errno(m)
      let message = String(cString: mysql_error(m))
      mysql_close(m)
      throw MyConnection.connectError(code: code, message: message, url: url, password: password)
    }
    mysql = m
  }

  deinit { mysql_close(mysql) }

  static func connectError(code: UInt32, message raw: String, url: MyURL, password: String?) -> BackupError {
    var message = oneLine(raw)
    if let password, !password.isEmpty { message = message.replacingOccurrences(of: password, with: "***") }
    let ep = url.endpoint
    if code == 1049 {  // ER_BAD_DB_ERROR
      return BackupError(.notFound, "MySQL/MariaDB database at \(ep) does not exist: \(message)")
    }
    var hint: String?
    if code == 1045 {  // ER_ACCESS_DENIED_ERROR
      hint = "check the user and password (in the URL, MYSQL_PWD or ~/.my.cnf)"
    } else if code == 2002 || code == 2003 || code == 2005 {
      hint =
        "is the server running and accepting connections there? (localhost means the socket: try 127.0.0.1)"
    }
    return BackupError(.database, "cannot connect to MySQL/MariaDB at \(ep): \(message)", hint: hint)
  }

  var errorCode: UInt32 { mysql_errno(mysql) }
  var errorMessage: String { oneLine(String(cString: mysql_error(mysql))) }

  var serverVersion: String { String(cString: mysql_get_server_info(mysql)) }

  /// Sends one statement (not NUL-terminated bytes); throws `MyStatementError`.
  func send(_ sql: UnsafeRawBufferPointer) throws {
    let empty: [CChar] = [0]
    let rc = empty.withUnsafeBufferPointer { e in
      mysql_real_query(
        mysql, sql.baseAddress?.assumingMemoryBound(to: CChar.self) ?? e.baseAddress, UInt(sql.count))
    }
    guard rc == 0 else { throw MyStatementError(code: errorCode, message: errorMessage) }
  }

  /// Runs one statement that returns no rows (a result, if any, is discarded); returns the
  /// affected row count.
  @discardableResult
  func execRaw(_ sql: UnsafeRawBufferPointer) throws -> Int64 {
    try send(sql)
    if let res = mysql_store_result(mysql) {
      mysql_free_result(res)
      return 0
    }
    if mysql_field_count(mysql) != 0 { throw MyStatementError(code: errorCode, message: errorMessage) }
    let n = mysql_affected_rows(mysql)
    return n == UInt64.max ? 0 : Int64(n)
  }

  /// Runs statements that return no rows; a failure is a `.database` error naming the server.
  func exec(_ sql: String) throws {
    do {
      var s = sql
      try s.withUTF8 { _ = try execRaw(UnsafeRawBufferPointer($0)) }
    } catch let e as MyStatementError {
      throw BackupError(.database, "MySQL/MariaDB at \(endpoint): \(e.message)")
    }
  }

  /// Runs a query and returns its rows as text (nil = NULL). For small results only.
  func query(_ sql: String) throws -> [[String?]] {
    var rows: [[String?]] = []
    try stream(sql) { row, lengths, n in
      var r: [String?] = []
      r.reserveCapacity(n)
      for i in 0..<n {
        if let p = row[i] {
          r.append(String(decoding: UnsafeRawBufferPointer(start: p, count: Int(lengths[i])), as: UTF8.self))
        } else {
          r.append(nil)
        }
      }
      rows.append(r)
    }
    return rows
  }

  /// Runs a query with `mysql_use_result` (rows stream from the server, nothing is buffered) and
  /// hands each row to `body` as (values, lengths, column count). Returns the result's fields.
  @discardableResult
  func stream(
    _ sql: String,
    fields onFields: (([MyField]) throws -> Void)? = nil,
    _ body: (MYSQL_ROW, UnsafeMutablePointer<UInt>, Int) throws -> Void
  ) throws -> [MyField] {
    do {
      var s = sql
      try s.withUTF8 { try send(UnsafeRawBufferPointer($0)) }
    } catch let e as MyStatementError {
      throw BackupError(.database, "MySQL/MariaDB at \(endpoint): \(e.message)")
    }
    guard let res = mysql_use_result(mysql) else {
      if errorCode != 0 { throw BackupError(.database, "MySQL/MariaDB at \(endpoint): \(errorMessage)") }
      return []
    }
    defer { mysql_free_result(res) }
    let n = Int(mysql_num_fields(res))
    var fields: [MyField] = []
    if let f = mysql_fetch_fields(res) {
      for i in 0..<n { fields.append(MyField(f[i])) }
    }
    try onFields?(fields)
    while true {
      guard let row = mysql_fetch_row(res) else {
        // a NULL row is the end, or an error (lost connection, killed query)
        if errorCode != 0 {
          throw BackupError(.database, "MySQL/MariaDB at \(endpoint): reading rows failed: \(errorMessage)")
        }
        break
      }
      guard let lengths = mysql_fetch_lengths(res) else {
        throw BackupError(.database, "MySQL/MariaDB at \(endpoint): no row lengths: \(errorMessage)")
      }
      try body(row, lengths, n)
    }
    return fields
  }

  /// Every dumped session starts from the same settings: UTF-8 (4-byte), UTC for TIMESTAMP, no
  /// sql_mode surprises (ANSI_QUOTES, NO_BACKSLASH_ESCAPES), and timeouts that let a slow reader
  /// (compression, a slow disk) keep a streaming result open.
  func setStableSession() throws {
    try exec(
      "SET NAMES utf8mb4, time_zone = '+00:00', sql_mode = '', net_write_timeout = 3600, net_read_timeout = 3600, wait_timeout = 86400"
    )
  }
}

/// What a result column is, as far as writing its values goes.
struct MyField {
  var name: String
  var type: enum_field_types
  var binary: Bool

  init(_ f: MYSQL_FIELD) {
    name = f.name.map { String(cString: $0) } ?? ""
    type = f.type
    binary = f.charsetnr == 63
  }

  enum Kind { case number, bit, binary, text }

  var kind: Kind {
    switch type {
    case MYSQL_TYPE_TINY, MYSQL_TYPE_SHORT, MYSQL_TYPE_LONG, MYSQL_TYPE_LONGLONG, MYSQL_TYPE_INT24,
      MYSQL_TYPE_FLOAT, MYSQL_TYPE_DOUBLE, MYSQL_TYPE_DECIMAL, MYSQL_TYPE_NEWDECIMAL, MYSQL_TYPE_YEAR:
      return .number
    case MYSQL_TYPE_BIT:
      return .bit
    case MYSQL_TYPE_STRING, MYSQL_TYPE_VAR_STRING, MYSQL_TYPE_VARCHAR, MYSQL_TYPE_BLOB, MYSQL_TYPE_TINY_BLOB,
      MYSQL_TYPE_MEDIUM_BLOB, MYSQL_TYPE_LONG_BLOB, MYSQL_TYPE_GEOMETRY:
      return binary ? .binary : .text
    default:
      return .text
    }
  }
}
