import BackupModel
import CSQLite
import Foundation

/// Runs the `INSERT INTO "t" VALUES(...);` lines that `dump` writes without SQLite parsing each
/// one: the values are read here and bound to one prepared statement per table. Only the exact
/// shapes `dump` writes are accepted (NULL, decimal integers, plain reals, '…' text, X'…'
/// blobs, CAST(X'…' AS TEXT)); anything else returns nil and the caller runs the statement as
/// SQL, so the result is the same either way.
final class FastInsert {
  private let db: SQLiteConnection
  private var statements: [[UInt8]: (OpaquePointer, Int32)] = [:]
  /// Prefixes that could not be prepared: their rows go the SQL way without asking again.
  private var rejected: Set<[UInt8]> = []
  private var scratch: [UInt8] = []

  init(db: SQLiteConnection) { self.db = db }

  deinit { for (s, _) in statements.values { sqlite3_finalize(s) } }

  private static let insertInto = Array("INSERT INTO ".utf8)
  private static let values = Array(" VALUES(".utf8)

  enum Outcome { case done, failed(String) }

  /// Tries one complete line. nil: not a shape this path handles (nothing was executed).
  func run(_ line: [UInt8]) -> Outcome? {
    guard line.starts(with: FastInsert.insertInto) else { return nil }
    return line.withUnsafeBufferPointer { buf -> Outcome? in
      guard let prefixEnd = endOfPrefix(buf) else { return nil }
      let key = Array(buf[0..<prefixEnd])
      guard let (stmt, count) = statement(for: key) else { return nil }
      var i = prefixEnd
      var column: Int32 = 0
      sqlite3_reset(stmt)
      sqlite3_clear_bindings(stmt)
      while true {
        column += 1
        guard column <= count, let next = bindValue(stmt, column, buf, at: i) else { return nil }
        i = next
        guard i < buf.count else { return nil }
        if buf[i] == UInt8(ascii: ",") {
          i += 1
          continue
        }
        guard buf[i] == UInt8(ascii: ")") else { return nil }
        i += 1
        break
      }
      guard column == count, i < buf.count, buf[i] == UInt8(ascii: ";") else { return nil }
      i += 1
      while i < buf.count, buf[i] == 0x0A || buf[i] == 0x20 { i += 1 }
      guard i == buf.count else { return nil }
      let rc = sqlite3_step(stmt)
      if rc == SQLITE_DONE { return .done }
      let message = db.errorMessage
      sqlite3_reset(stmt)
      return .failed(message)
    }
  }

  /// `INSERT INTO "t" VALUES(` or `INSERT INTO "t"("a","b") VALUES(`: the index after it.
  private func endOfPrefix(_ b: UnsafeBufferPointer<UInt8>) -> Int? {
    guard var i = skipIdentifier(b, at: FastInsert.insertInto.count) else { return nil }
    if i < b.count && b[i] == UInt8(ascii: "(") {
      repeat {
        guard let next = skipIdentifier(b, at: i + 1) else { return nil }
        i = next
      } while i < b.count && b[i] == UInt8(ascii: ",")
      guard i < b.count && b[i] == UInt8(ascii: ")") else { return nil }
      i += 1
    }
    guard matches(" VALUES(", b, at: i) else { return nil }
    return i + FastInsert.values.count
  }

  /// Skips one double-quoted identifier ("" inside it stands for ").
  private func skipIdentifier(_ b: UnsafeBufferPointer<UInt8>, at start: Int) -> Int? {
    guard start < b.count, b[start] == UInt8(ascii: "\"") else { return nil }
    var i = start + 1
    while i < b.count {
      if b[i] == UInt8(ascii: "\"") {
        if i + 1 < b.count && b[i + 1] == UInt8(ascii: "\"") {
          i += 2
          continue
        }
        return i + 1
      }
      if b[i] == 0x0A { return nil }
      i += 1
    }
    return nil
  }

  /// The prepared `INSERT INTO <same target> VALUES(?,…)` for a prefix, with its parameter count.
  private func statement(for prefix: [UInt8]) -> (OpaquePointer, Int32)? {
    if let s = statements[prefix] { return s }
    if rejected.contains(prefix) { return nil }
    rejected.insert(prefix)
    let head = String(decoding: prefix.dropLast(FastInsert.values.count), as: UTF8.self)
    // the number of values: the named columns, or the table's columns that take values
    let count: Int
    if head.hasSuffix(")") {
      // walk the quoted names of the column list
      count = prefix.withUnsafeBufferPointer { b -> Int in
        guard var i = skipIdentifier(b, at: FastInsert.insertInto.count) else { return 0 }
        var n = 0
        while i < b.count && (b[i] == UInt8(ascii: "(") || b[i] == UInt8(ascii: ",")) {
          guard let next = skipIdentifier(b, at: i + 1) else { return 0 }
          n += 1
          i = next
        }
        return n
      }
    } else {
      let quoted = String(head.dropFirst(FastInsert.insertInto.count))
      let name = String(quoted.dropFirst().dropLast()).replacingOccurrences(of: "\"\"", with: "\"")
      guard let n = try? db.prepare("SELECT count(*) FROM pragma_table_xinfo(?1) WHERE hidden = 0") else {
        return nil
      }
      n.bind(1, name)
      guard (try? n.step()) == true else { return nil }
      count = Int(n.int64(0))
    }
    guard count > 0 else { return nil }
    let sql = head + " VALUES(" + Array(repeating: "?", count: count).joined(separator: ",") + ")"
    var stmt: OpaquePointer?
    guard sqlite3_prepare_v2(db.handle, sql, -1, &stmt, nil) == SQLITE_OK, let stmt else { return nil }
    rejected.remove(prefix)
    statements[prefix] = (stmt, Int32(count))
    return (stmt, Int32(count))
  }

  /// Binds the literal at `i`; returns the index after it, or nil for an unknown shape.
  private func bindValue(
    _ stmt: OpaquePointer, _ column: Int32, _ b: UnsafeBufferPointer<UInt8>, at start: Int
  )
    -> Int?
  {
    guard start < b.count else { return nil }
    let c = b[start]
    if c == UInt8(ascii: "'") {
      scratch.removeAll(keepingCapacity: true)
      var i = start + 1
      var runStart = i
      while i < b.count {
        if b[i] == UInt8(ascii: "'") {
          scratch.append(contentsOf: UnsafeBufferPointer(rebasing: b[runStart..<i]))
          if i + 1 < b.count && b[i + 1] == UInt8(ascii: "'") {
            scratch.append(UInt8(ascii: "'"))
            i += 2
            runStart = i
            continue
          }
          scratch.withUnsafeBytes { bindText(stmt, column, $0) }
          return i + 1
        }
        if b[i] == 0x0A { return nil }  // spans lines: leave it to SQL
        i += 1
      }
      return nil
    }
    if c == UInt8(ascii: "X") || c == UInt8(ascii: "C") {
      let isCast = c == UInt8(ascii: "C")
      let open = isCast ? "CAST(X'" : "X'"
      guard matches(open, b, at: start) else { return nil }
      let hexStart = start + open.utf8.count
      guard let quote = (hexStart..<b.count).first(where: { b[$0] == UInt8(ascii: "'") }),
        let bytes = try? Bytes.decodeHex(ArraySlice(b[hexStart..<quote]))
      else { return nil }
      var end = quote + 1
      if isCast {
        guard matches(" AS TEXT)", b, at: end) else { return nil }
        end += " AS TEXT)".utf8.count
        bytes.withUnsafeBytes { bindText(stmt, column, $0) }
      } else {
        bytes.withUnsafeBytes { bindBlob(stmt, column, $0) }
      }
      return end
    }
    if c == UInt8(ascii: "N") {
      guard matches("NULL", b, at: start) else { return nil }
      sqlite3_bind_null(stmt, column)
      return start + 4
    }
    // a number: -?digits[.digits][e[+-]digits]
    var i = start
    if b[i] == UInt8(ascii: "-") { i += 1 }
    let digitsStart = i
    while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
    guard i > digitsStart else { return nil }
    var isReal = false
    if i < b.count, b[i] == UInt8(ascii: ".") {
      isReal = true
      i += 1
      while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
    }
    if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
      isReal = true
      i += 1
      if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
      let expStart = i
      while i < b.count, b[i] >= 0x30, b[i] <= 0x39 { i += 1 }
      guard i > expStart else { return nil }
    }
    let text = String(decoding: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
    if isReal {
      // dump only writes reals whose text SQLite reads back to the same double; Swift reads
      // it correctly rounded, which gives that same double
      guard let v = Double(text) else { return nil }
      sqlite3_bind_double(stmt, column, v)
    } else {
      guard let v = Int64(text) else { return nil }  // out of range: SQLite would make it a REAL
      sqlite3_bind_int64(stmt, column, v)
    }
    return i
  }

  private func matches(_ s: String, _ b: UnsafeBufferPointer<UInt8>, at i: Int) -> Bool {
    let u = Array(s.utf8)
    guard i + u.count <= b.count else { return false }
    for k in 0..<u.count where b[i + k] != u[k] { return false }
    return true
  }
}
