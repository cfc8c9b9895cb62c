import BackupModel
import CLibPQ
import Foundation

/// A libpq conninfo (URL or keyword string) taken apart, so that a password never reaches a
/// message, a child's argv or a manifest.
struct ConnInfo {
  /// Every option libpq parsed, keyword -> value (only the ones given).
  var options: [String: String]

  init(_ text: String) throws {
    var err: UnsafeMutablePointer<CChar>?
    guard let parsed = PQconninfoParse(text, &err) else {
      var message = err.map { String(cString: $0) } ?? "invalid connection string"
      if let err { PQfreemem(err) }
      message = ConnInfo.redact(message)
      throw BackupError(
        .usage, "invalid PostgreSQL connection string: \(oneLine(message))",
        hint: "use postgresql://user@host:port/dbname or 'host=... dbname=...'")
    }
    defer { PQconninfoFree(parsed) }
    var options: [String: String] = [:]
    var p = parsed
    while let keyword = p.pointee.keyword {
      if let val = p.pointee.val { options[String(cString: keyword)] = String(cString: val) }
      p += 1
    }
    self.options = options
    // an error message can quote parts of the string: never let the password through
    if let pw = options["password"], !pw.isEmpty, text.contains(pw) { secrets.append(pw) }
  }

  var secrets: [String] = []

  /// The keyword form libpq reads back, with `overrides` applied (nil removes a keyword).
  func keywordString(overrides: [String: String?] = [:], includePassword: Bool) -> String {
    var o = options
    for (k, v) in overrides { o[k] = v }
    if !includePassword { o["password"] = nil }
    return o.keys.sorted().compactMap { k in
      guard let v = o[k], !v.isEmpty else { return nil }
      return "\(k)=\(ConnInfo.quote(v))"
    }.joined(separator: " ")
  }

  static func quote(_ v: String) -> String {
    "'" + v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
  }

  /// The database a connection goes to when none is named (libpq: the user name).
  var databaseName: String {
    if let d = options["dbname"], !d.isEmpty { return d }
    if let d = ProcessInfo.processInfo.environment["PGDATABASE"], !d.isEmpty { return d }
    return userName
  }

  var userName: String {
    if let u = options["user"], !u.isEmpty { return u }
    if let u = ProcessInfo.processInfo.environment["PGUSER"], !u.isEmpty { return u }
    return ProcessInfo.processInfo.environment["USER"] ?? NSUserName()
  }

  /// `host:port/db` for messages (never the password).
  var endpoint: String {
    let env = ProcessInfo.processInfo.environment
    let host =
      options["host"].flatMap { $0.isEmpty ? nil : $0 } ?? options["hostaddr"] ?? env["PGHOST"] ?? "localhost"
    let port = options["port"].flatMap { $0.isEmpty ? nil : $0 } ?? env["PGPORT"] ?? "5432"
    return "\(host):\(port)/\(databaseName)"
  }

  /// Removes passwords from a URL or keyword conninfo (and from anything quoting one).
  static func redact(_ text: String) -> String {
    var s = text
    // postgresql://user:password@host -> postgresql://user@host
    if let schemeEnd = s.range(of: "://") {
      let rest = s[schemeEnd.upperBound...]
      let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
      let authority = rest[..<authorityEnd]
      if let at = authority.lastIndex(of: "@") {
        let userinfo = authority[..<at]
        if let colon = userinfo.firstIndex(of: ":") {
          s.replaceSubrange(colon..<at, with: "")
        }
      }
    }
    // password=... in a keyword string or a URL query
    var out = ""
    var i = s.startIndex
    while let r = s.range(of: "password=", options: .caseInsensitive, range: i..<s.endIndex) {
      let before = r.lowerBound == s.startIndex ? " " : s[s.index(before: r.lowerBound)]
      out += s[i..<r.upperBound]
      i = r.upperBound
      guard before == " " || before == "?" || before == "&" || before == "\t" else { continue }
      out += "***"
      if i < s.endIndex && s[i] == "'" {
        var j = s.index(after: i)
        while j < s.endIndex && s[j] != "'" {
          if s[j] == "\\" { j = s.index(after: j) }
          if j < s.endIndex { j = s.index(after: j) }
        }
        i = j < s.endIndex ? s.index(after: j) : j
      } else {
        i = s[i...].firstIndex(where: { $0 == " " || $0 == "&" || $0 == "\t" }) ?? s.endIndex
      }
    }
    return out + s[i...]
  }
}

func oneLine(_ s: String) -> String {
  s.split(whereSeparator: { $0 == "\n" || $0 == "\r" }).map { $0.trimmingCharacters(in: .whitespaces) }
    .filter { !$0.isEmpty }.joined(separator: "; ")
}

/// A statement that failed on the server.
struct PGStatementError: Error {
  var sqlstate: String
  var message: String
}

/// One libpq connection. Blocking; used from one thread at a time.
final class PGConnection {
  let conn: OpaquePointer
  let info: ConnInfo
  var endpoint: String { info.endpoint }

  init(_ info: ConnInfo) throws {
    self.info = info
    guard let c = PQconnectdb(info.keywordString(includePassword: true)) else {
      throw BackupError(.database, "cannot connect to PostgreSQL at \(info.endpoint): out of memory")
    }
    guard PQstatus(c) == CONNECTION_OK else {
      let raw = String(cString: PQerrorMessage(c))
      PQfinish(c)
      throw PGConnection.connectError(raw, info: info)
    }
    conn = c
    // server NOTICEs (e.g. "does not exist, skipping") are not for the user's terminal
    PQsetNoticeProcessor(c, { _, _ in }, nil)
  }

  deinit { PQfinish(conn) }

  static func connectError(_ raw: String, info: ConnInfo) -> BackupError {
    var message = raw
    for secret in info.secrets { message = message.replacingOccurrences(of: secret, with: "***") }
    // drop libpq's "connection to server at "h" (a), port p failed:" prefixes: we name host:port/db
    message = oneLine(message)
    while let r = message.range(of: "failed: "), message[..<r.lowerBound].hasPrefix("connection to server") {
      message = String(message[r.upperBound...])
    }
    message = message.replacingOccurrences(of: "FATAL:  ", with: "").replacingOccurrences(
      of: "FATAL: ", with: "")
    let ep = info.endpoint
    if message.contains("database \"") && message.contains("does not exist") {
      return BackupError(.notFound, "PostgreSQL database at \(ep) does not exist: \(message)")
    }
    var hint: String?
    if message.contains("password authentication failed") || message.contains("no password supplied") {
      hint = "check the password (in the URL, PGPASSWORD or ~/.pgpass)"
    } else if message.contains("Connection refused") || message.contains("No such file or directory") {
      hint = "is the server running and accepting connections there?"
    }
    return BackupError(.database, "cannot connect to PostgreSQL at \(ep): \(message)", hint: hint)
  }

  var errorMessage: String { oneLine(String(cString: PQerrorMessage(conn))) }

  var serverVersionNumber: Int { Int(PQserverVersion(conn)) }

  /// The password libpq used (from the string, PGPASSWORD or ~/.pgpass), if any.
  var usedPassword: String? {
    guard let p = PQpass(conn) else { return nil }
    let s = String(cString: p)
    return s.isEmpty ? nil : s
  }

  /// Every libpq option of this live connection (host, port, dbname, sslmode, …).
  func effectiveOptions() -> [String: String] {
    guard let opts = PQconninfo(conn) else { return [:] }
    defer { PQconninfoFree(opts) }
    var out: [String: String] = [:]
    var p = opts
    while let keyword = p.pointee.keyword {
      if let val = p.pointee.val { out[String(cString: keyword)] = String(cString: val) }
      p += 1
    }
    return out
  }

  // MARK: statements

  /// Runs SQL (may be several statements); returns the last result's rows as text (nil = NULL).
  @discardableResult
  func query(_ sql: String, _ params: [String?] = []) throws -> [[String?]] {
    let res: OpaquePointer?
    if params.isEmpty {
      res = PQexec(conn, sql)
    } else {
      var cstrings: [UnsafeMutablePointer<CChar>?] = params.map { $0.map { strdup($0) } ?? nil }
      defer { for p in cstrings { free(p) } }
      res = cstrings.withUnsafeMutableBufferPointer { buf in
        buf.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) {
          PQexecParams(conn, sql, Int32(params.count), nil, $0, nil, nil, 0)
        }
      }
    }
    defer { PQclear(res) }
    let st = PQresultStatus(res)
    guard st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK else {
      throw BackupError(.database, "PostgreSQL at \(endpoint): \(resultError(res))")
    }
    var rows: [[String?]] = []
    let n = PQntuples(res)
    let f = PQnfields(res)
    rows.reserveCapacity(Int(n))
    for r in 0..<n {
      var row: [String?] = []
      for c in 0..<f {
        row.append(PQgetisnull(res, r, c) != 0 ? nil : String(cString: PQgetvalue(res, r, c)))
      }
      rows.append(row)
    }
    return rows
  }

  func resultError(_ res: OpaquePointer?) -> String {
    if let res, let m = PQresultErrorMessage(res), m.pointee != 0 {
      return oneLine(String(cString: m)).replacingOccurrences(of: "ERROR:  ", with: "")
    }
    return errorMessage
  }

  func sqlstate(_ res: OpaquePointer?) -> String {
    guard let res, let p = PQresultErrorField(res, Int32(UInt8(ascii: "C"))) else { return "" }
    return String(cString: p)
  }

  /// Runs raw statement bytes (not NUL-terminated); throws `PGStatementError` on failure.
  /// Returns the result status (a COPY FROM STDIN leaves the connection in COPY IN state).
  @discardableResult
  func execRaw(_ sql: UnsafeRawBufferPointer) throws -> ExecStatusType {
    var text = [CChar](repeating: 0, count: sql.count + 1)
    text.withUnsafeMutableBytes { $0.copyMemory(from: sql) }
    let res = PQexec(conn, text)
    defer { PQclear(res) }
    let st = PQresultStatus(res)
    guard st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK || st == PGRES_COPY_IN || st == PGRES_EMPTY_QUERY
    else {
      throw PGStatementError(sqlstate: sqlstate(res), message: resultError(res))
    }
    return st
  }

  // MARK: COPY

  /// Runs `COPY ... TO STDOUT` and hands each row (one line, with its "\n") to `body`.
  func copyOut(_ sql: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
    let res = PQexec(conn, sql)
    let st = PQresultStatus(res)
    if st != PGRES_COPY_OUT {
      let message = resultError(res)
      PQclear(res)
      throw BackupError(.database, "PostgreSQL at \(endpoint): \(message)")
    }
    PQclear(res)
    while true {
      var buf: UnsafeMutablePointer<CChar>?
      let n = PQgetCopyData(conn, &buf, 0)
      if n > 0, let buf {
        defer { PQfreemem(buf) }
        try body(UnsafeRawBufferPointer(start: buf, count: Int(n)))
      } else if n == -1 {
        break
      } else {
        throw BackupError(.database, "PostgreSQL at \(endpoint): COPY failed: \(errorMessage)")
      }
    }
    var failure: String?
    while let r = PQgetResult(conn) {
      if PQresultStatus(r) != PGRES_COMMAND_OK { failure = resultError(r) }
      PQclear(r)
    }
    if let failure { throw BackupError(.database, "PostgreSQL at \(endpoint): \(failure)") }
  }

  func putCopyData(_ bytes: UnsafeRawBufferPointer) throws {
    guard bytes.count > 0 else { return }
    let rc = PQputCopyData(
      conn, bytes.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(bytes.count))
    guard rc == 1 else {
      throw PGStatementError(sqlstate: "", message: "COPY data could not be sent: \(errorMessage)")
    }
  }

  /// Ends a COPY FROM STDIN (with `failWith`, aborts it); returns the rows the server copied.
  @discardableResult
  func endCopyIn(failWith: String? = nil) throws -> Int64 {
    let rc = PQputCopyEnd(conn, failWith)
    guard rc == 1 else { throw PGStatementError(sqlstate: "", message: "COPY end failed: \(errorMessage)") }
    var failure: PGStatementError?
    var rows: Int64 = 0
    while let r = PQgetResult(conn) {
      if PQresultStatus(r) != PGRES_COMMAND_OK {
        failure = PGStatementError(sqlstate: sqlstate(r), message: resultError(r))
      } else {
        rows = Int64(String(cString: PQcmdTuples(r))) ?? 0
      }
      PQclear(r)
    }
    if let failure { throw failure }
    return rows
  }
}
