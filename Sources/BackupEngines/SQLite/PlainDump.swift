import BackupModel
import CSQLite
import Foundation

/// Turns the output of `sqlite3 db .dump` (a plain SQL script) into the parts of an ai-shell
/// backup: the schema part (every CREATE TABLE, with object markers), one part per table (its
/// INSERT statements, unchanged) and the post-data part (indexes, views, triggers, sequences,
/// anything else, then COMMIT). Two passes over the script: the first learns the objects (by
/// running the DDL in an in-memory database) and the tables' row counts, the second streams the
/// rows. Memory holds the DDL only.
public enum SQLitePlainDump {
  public struct Result: Sendable {
    /// Schema objects in creation order (for the manifest).
    public var objects: [SchemaObject]
    /// (table, INSERT statements) in the order of the table parts.
    public var tables: [(name: String, rows: Int64)]
  }

  /// True when the first statement of `head` is what `sqlite3 .dump` starts with.
  public static func looksLikeDump(_ head: [UInt8]) -> Bool {
    let text = String(decoding: head.prefix(64 * 1024), as: UTF8.self)
    for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
      let line = raw.trimmingCharacters(in: .whitespaces).uppercased()
      if line.isEmpty || line.hasPrefix("--") { continue }
      return line.hasPrefix("PRAGMA FOREIGN_KEYS=OFF;") || line.hasPrefix("BEGIN TRANSACTION;")
        || line.hasPrefix("CREATE TABLE")
    }
    return false
  }

  private struct Statement {
    var text: [UInt8]
    var object: SchemaObject?
  }

  /// Converts the script `open()` yields (called twice) into parts written to `sink`.
  public static func convert(open: () throws -> ByteSource, to sink: PartSink) throws -> Result {
    // pass 1: DDL, objects, table order and row counts
    let memory = try SQLiteConnection(path: ":memory:", flags: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
    var schema: [Statement] = []
    var post: [Statement] = []
    var objects: [SchemaObject] = []
    var tablesByFoldedName: [String: String] = [:]
    var order: [String] = []
    var rows: [String: Int64] = [:]
    var current: String?
    var seenInsert = false
    var lastRowid: Int64 = 0
    var sequenceAt: Int?
    func runInMemory(_ text: [UInt8]) {
      var sql = text
      sql.append(0)
      _ = sql.withUnsafeBufferPointer {
        sqlite3_exec(
          memory.handle, UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), nil, nil, nil)
      }
    }
    try statements(open()) { text in
      if let target = insertTarget(text) {
        let folded = foldName(target)
        if let table = tablesByFoldedName[folded] {
          seenInsert = true
          if table != current {
            guard rows[table] == nil else {
              throw BackupError(
                .usage, "the rows of table \"\(table)\" are not together in the dump",
                hint: "import the output of `sqlite3 db .dump`, which writes each table's rows in one run")
            }
            order.append(table)
            current = table
          }
          rows[table, default: 0] += 1
          return
        }
        if folded == "sqlite_sequence" {
          // replaced by one marked statement per table (below), as ai-shell's own dumps do
          sequenceAt = sequenceAt ?? post.count
          runInMemory(text)
          return
        }
        post.append(Statement(text: text, object: nil))  // sqlite_stat1, ...
        return
      }
      let upper = String(decoding: text.prefix(32), as: UTF8.self).uppercased()
      if upper == "PRAGMA FOREIGN_KEYS=OFF;" || upper == "BEGIN TRANSACTION;" || upper == "BEGIN;"
        || upper == "COMMIT;" || upper == "END TRANSACTION;" || upper == "END;"
      {
        return
      }
      if upper.hasPrefix("DELETE FROM SQLITE_SEQUENCE") {
        sequenceAt = sequenceAt ?? post.count
        return
      }
      // learn what the statement creates
      runInMemory(text)
      var created: SchemaObject?
      let s = try memory.prepare(
        "SELECT rowid, type, name, tbl_name FROM sqlite_schema WHERE rowid > \(lastRowid) ORDER BY rowid")
      while try s.step() {
        lastRowid = max(lastRowid, s.int64(0))
        let type = s.string(1) ?? ""
        let name = s.string(2) ?? ""
        guard !isInternalName(name) else { continue }
        let object = SchemaObject(
          type: type, name: name, table: type == "view" ? nil : (type == "table" ? name : s.string(3)))
        objects.append(object)
        if type == "table" { tablesByFoldedName[foldName(name)] = name }
        if created == nil { created = object }
      }
      let statement = Statement(text: text, object: created)
      if created?.type == "table" || (created == nil && !seenInsert) {
        schema.append(statement)
      } else {
        post.append(statement)
      }
    }
    if let at = sequenceAt,
      let s = try? memory.prepare("SELECT name, seq FROM sqlite_sequence ORDER BY rowid")
    {
      var sequences: [Statement] = []
      while try s.step() {
        let name = s.string(0) ?? ""
        let lit = quoteLiteral(name)
        let sql =
          "DELETE FROM sqlite_sequence WHERE name=\(lit);\nINSERT INTO sqlite_sequence(name,seq) VALUES(\(lit),\(s.int64(1)));"
        let object = SchemaObject(type: "sequence", name: name, table: name)
        sequences.append(Statement(text: Array(sql.utf8), object: object))
        objects.append(object)
      }
      post.insert(contentsOf: sequences, at: min(at, post.count))
    }
    for o in objects where o.type == "table" && rows[o.name] == nil {
      order.append(o.name)
      rows[o.name] = 0
    }

    // pass 2: write
    func write(_ statements: [Statement]) throws {
      for st in statements {
        var bytes: [UInt8] = []
        if let o = st.object { bytes += Array((Bytes.markerPrefix + Bytes.markerJSON(o) + "\n").utf8) }
        bytes += st.text
        bytes.append(0x0A)
        try bytes.withUnsafeBytes { try sink.write($0) }
      }
    }
    try sink.beginPart(kind: .schema, table: nil)
    try Array("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n".utf8).withUnsafeBytes { try sink.write($0) }
    try write(schema)
    try sink.endPart(rows: nil, contentChecksum: nil)
    var openTable: String?
    var written: [String: Int64] = [:]
    try statements(open()) { text in
      guard let target = insertTarget(text), let table = tablesByFoldedName[foldName(target)] else { return }
      if table != openTable {
        if let o = openTable { try sink.endPart(rows: written[o], contentChecksum: nil) }
        try sink.beginPart(kind: .table, table: table)
        openTable = table
      }
      written[table, default: 0] += 1
      var line = text
      line.append(0x0A)
      try line.withUnsafeBytes { try sink.write($0) }
    }
    if let o = openTable { try sink.endPart(rows: written[o], contentChecksum: nil) }
    guard written == rows.filter({ $0.value > 0 }) else {
      throw BackupError(.corrupt, "the dump changed while it was being imported")
    }
    for name in order where rows[name] == 0 {
      try sink.beginPart(kind: .table, table: name)
      try sink.endPart(rows: 0, contentChecksum: nil)
    }
    try sink.beginPart(kind: .postData, table: nil)
    try write(post)
    try Array("COMMIT;\n".utf8).withUnsafeBytes { try sink.write($0) }
    try sink.endPart(rows: nil, contentChecksum: nil)
    return Result(objects: objects, tables: order.map { ($0, rows[$0] ?? 0) })
  }

  /// Calls `body` with each complete statement (trimmed), as the sqlite3 shell splits a script:
  /// a statement ends at a line ending in ";" where `sqlite3_complete` agrees. Comment lines
  /// between statements are dropped.
  static func statements(_ source: ByteSource, _ body: ([UInt8]) throws -> Void) throws {
    let reader = InputReader(source)
    var acc: [UInt8] = []
    var line: [UInt8] = []
    while try reader.readLine(into: &line) {
      if acc.isEmpty {
        guard let first = line.firstIndex(where: { !isSpace($0) }) else { continue }
        if line[first] == UInt8(ascii: "-") && first + 1 < line.count && line[first + 1] == UInt8(ascii: "-")
        {
          continue
        }
      }
      acc.append(contentsOf: line)
      guard let last = acc.lastIndex(where: { !isSpace($0) }), acc[last] == UInt8(ascii: ";") else {
        continue
      }
      acc.append(0)
      let complete = acc.withUnsafeBufferPointer {
        sqlite3_complete(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self))
      }
      acc.removeLast()
      guard complete != 0 else { continue }
      let first = acc.firstIndex(where: { !isSpace($0) }) ?? 0
      try body(Array(acc[first...last]))
      acc.removeAll(keepingCapacity: true)
    }
    if acc.contains(where: { !isSpace($0) }) {
      throw BackupError(.corrupt, "the dump ends inside an SQL statement", hint: "it is truncated")
    }
  }

  /// The table an `INSERT INTO <name> ...` statement writes to, unquoted; nil for other statements.
  static func insertTarget(_ text: [UInt8]) -> String? {
    let prefix = Array("INSERT INTO".utf8)
    guard text.count > prefix.count + 1 else { return nil }
    for (i, c) in prefix.enumerated() where (text[i] & 0xDF) != (c & 0xDF) && c != 0x20 { return nil }
    var i = prefix.count
    guard isSpace(text[i]) else { return nil }
    while i < text.count && isSpace(text[i]) { i += 1 }
    guard i < text.count else { return nil }
    let open = text[i]
    let close: UInt8?
    switch open {
    case UInt8(ascii: "\""), UInt8(ascii: "`"), UInt8(ascii: "'"): close = open
    case UInt8(ascii: "["): close = UInt8(ascii: "]")
    default: close = nil
    }
    var name: [UInt8] = []
    if let close {
      i += 1
      while i < text.count {
        if text[i] == close {
          if close != UInt8(ascii: "]") && i + 1 < text.count && text[i + 1] == close {
            name.append(close)
            i += 2
            continue
          }
          return String(decoding: name, as: UTF8.self)
        }
        name.append(text[i])
        i += 1
      }
      return nil
    }
    while i < text.count && !isSpace(text[i]) && text[i] != UInt8(ascii: "(") && text[i] != UInt8(ascii: ";")
    {
      name.append(text[i])
      i += 1
    }
    return name.isEmpty ? nil : String(decoding: name, as: UTF8.self)
  }
}
