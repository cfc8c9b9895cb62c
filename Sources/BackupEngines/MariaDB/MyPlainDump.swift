import BackupModel
import Foundation

/// Turns a `mariadb-dump` / `mysqldump` script into the parts of an ai-shell MySQL/MariaDB sql
/// backup: the schema part (the script's opening settings, sequences and CREATE TABLE
/// statements, with object markers), one part per table (its INSERT statements, unchanged, one
/// per line) and the post-data part (triggers, views, routines, events, sequence values). Two
/// passes over the script: the first reads the DDL and counts the rows, the second streams the
/// rows. Memory holds the DDL only.
///
/// Session statements (`/*!40101 SET … */`) travel with the object they surround: one that sets a
/// variable from a saved one (`SET sql_mode = @saved_sql_mode`) stays with the object before it,
/// any other goes with the next object, so a `--tables` restore never runs a restoring `SET`
/// without the saving one. `DROP TABLE` and `DROP … IF EXISTS` of routines, triggers and events,
/// `LOCK TABLES`, `ALTER TABLE … DISABLE KEYS`, `USE` and `CREATE DATABASE` are left out (a restore
/// refuses or drops existing objects itself); `DEFINER=` clauses are removed as in our own dumps.
public enum MariaDBPlainDump {
  public struct Result: Sendable {
    /// Schema objects in creation order (for the manifest).
    public var objects: [SchemaObject]
    /// The tables, in the order of their parts, with their row counts.
    public var tables: [(name: String, rows: Int64)]
    /// The server version the dump's header names, if any.
    public var serverVersion: String?
  }

  /// True when `head` starts like a mysqldump / mariadb-dump script.
  public static func looksLikeDump(_ head: [UInt8]) -> Bool {
    let text = String(decoding: head.prefix(64 * 1024), as: UTF8.self)
    return text.hasPrefix("-- MySQL dump") || text.hasPrefix("-- MariaDB dump")
      || text.contains("\n/*!40101 SET") || text.hasPrefix("/*!40101 SET") || text.hasPrefix("/*M!999999")
  }

  struct Block {
    var object: SchemaObject?
    var statements: [(text: [UInt8], delimiter: [UInt8])] = []
    var inManifest = true
  }

  enum Kind {
    case data(String), table(String), sequence(String), view(String), trigger(String, String)
    case routine(String, String), event(String), sequenceValue(String), dropForView, skip, restoreSet, other
  }

  public static func convert(open: () throws -> ByteSource, to sink: PartSink) throws -> Result {
    // pass 1: classify every statement; keep the DDL, count the rows
    var statements: [(Kind, [UInt8], [UInt8])] = []
    var viewDefinitions: [String: Int] = [:]
    var rows: [String: Int64] = [:]
    var serverVersion: String?
    var completed = false
    try MyScriptReader(open()).forEach(comment: { line in
      if line.starts(with: Array("-- Dump completed".utf8)) { completed = true }
      let s = String(decoding: line, as: UTF8.self)
      if serverVersion == nil, let r = s.range(of: "-- Server version") {
        serverVersion = s[r.upperBound...].trimmingCharacters(in: .whitespacesAndNewlines)
      }
    }) { text, delimiter in
      let kind = classify(text)
      switch kind {
      case .data(let t):
        rows[t, default: 0] += countTuples(text)
        statements.append((kind, [], delimiter))
      case .view(let v):
        viewDefinitions[v, default: 0] += 1
        statements.append((kind, text, delimiter))
      default:
        statements.append((kind, text, delimiter))
      }
    }
    // mariadb-dump and mysqldump end every dump with this line: without it the dump is cut short
    guard completed else {
      throw BackupError(
        .corrupt,
        "the dump does not end with the \"-- Dump completed\" line mariadb-dump writes: it is truncated",
        hint: "make the dump again (without --compact, which leaves that line out)")
    }
    // a view created twice: the first is mariadb-dump's placeholder (so views may read views)
    var header = Block()
    var schema: [Block] = []
    var post: [Block] = []
    var tableOrder: [String] = []
    var pending: [(text: [UInt8], delimiter: [UInt8])] = []
    var current: (post: Bool, index: Int)?
    var viewsSeen: [String: Int] = [:]
    func start(_ o: SchemaObject, post isPost: Bool, manifest: Bool = true, _ text: [UInt8], _ d: [UInt8]) {
      var b = Block(object: o, statements: pending, inManifest: manifest)
      pending = []
      b.statements.append((text, d))
      if isPost {
        post.append(b)
        current = (true, post.count - 1)
      } else {
        schema.append(b)
        current = (false, schema.count - 1)
      }
    }
    for (kind, text, d) in statements {
      switch kind {
      case .data(let t):
        if tableOrder.last != t {
          guard !tableOrder.contains(t) else {
            throw BackupError(
              .usage, "the rows of table \"\(t)\" are not in one place in this dump",
              hint: "import dumps written by mariadb-dump or mysqldump as they write them")
          }
          tableOrder.append(t)
        }
      case .table(let t):
        if viewDefinitions[t] != nil {
          start(SchemaObject(type: "view", name: t, table: nil), post: false, manifest: false, text, d)
        } else {
          start(SchemaObject(type: "table", name: t, table: t), post: false, text, d)
        }
      case .sequence(let s):
        start(SchemaObject(type: "sequence", name: s, table: nil), post: false, text, d)
      case .view(let v):
        viewsSeen[v, default: 0] += 1
        let placeholder = viewsSeen[v]! < viewDefinitions[v]!
        start(
          SchemaObject(type: "view", name: v, table: nil), post: !placeholder, manifest: !placeholder,
          noDefiner(text), d)
      case .trigger(let name, let table):
        start(SchemaObject(type: "trigger", name: name, table: table), post: true, noDefiner(text), d)
      case .routine(let type, let name):
        start(SchemaObject(type: type, name: name, table: nil), post: true, noDefiner(text), d)
      case .event(let name):
        start(SchemaObject(type: "event", name: name, table: nil), post: true, noDefiner(text), d)
      case .sequenceValue(let s):
        start(SchemaObject(type: "sequence set", name: s, table: nil), post: true, manifest: false, text, d)
      case .restoreSet:
        if let c = current {
          if c.post {
            post[c.index].statements.append((text, d))
          } else {
            schema[c.index].statements.append((text, d))
          }
        } else {
          header.statements.append((text, d))
        }
      case .dropForView, .other:
        if current == nil { header.statements.append((text, d)) } else { pending.append((text, d)) }
      case .skip:
        continue
      }
    }
    if !pending.isEmpty {
      if post.isEmpty { post.append(Block(object: nil, statements: [], inManifest: false)) }
      post[post.count - 1].statements += pending
    }
    // tables without rows get (empty) parts too, in their CREATE order
    let created = schema.compactMap { $0.object?.type == "table" ? $0.object?.name : nil }
    for t in tableOrder where !created.contains(t) {
      throw BackupError(.usage, "the dump has rows for table \"\(t)\" but no CREATE TABLE for it")
    }
    var order: [String] = []
    var next = 0
    for t in tableOrder {
      guard let at = created[next...].firstIndex(of: t) else {
        throw BackupError(
          .usage, "the rows of table \"\(t)\" come in another order than the tables are created",
          hint: "import dumps written by mariadb-dump or mysqldump as they write them")
      }
      order += created[next...at]
      next = at + 1
    }
    order += created[next...]

    // pass 2: the parts
    let out = OutputBuffer(sink: sink)
    try sink.beginPart(kind: .schema, table: nil)
    out.append("-- imported by ai-shell from a mariadb-dump / mysqldump script\n")
    render(header, to: out)
    for b in schema { render(b, to: out) }
    try out.flush()
    try sink.endPart(rows: nil, contentChecksum: nil)
    var partIndex = -1
    func advance(to t: String?) throws {
      while partIndex < order.count && (partIndex < 0 || order[partIndex] != t) {
        if partIndex >= 0 {
          try out.flush()
          try sink.endPart(rows: rows[order[partIndex]] ?? 0, contentChecksum: nil)
        }
        partIndex += 1
        guard partIndex < order.count else { return }
        let name = order[partIndex]
        try sink.beginPart(kind: .table, table: name)
        out.append(
          Bytes.markerPrefix + Bytes.markerJSON(SchemaObject(type: "data", name: name, table: name)) + "\n")
      }
    }
    try MyScriptReader(open()).forEach(comment: { _ in }) { text, _ in
      guard case .data(let t) = classify(text) else { return }
      try advance(to: t)
      // mariadb-dump 10.11 puts each row on its own line: a table part has one INSERT per line
      guard oneLine(text, to: out) else {
        throw BackupError(
          .usage, "an INSERT statement for table \"\(t)\" has a raw line break inside a quoted value",
          hint: "ai-shell imports dumps as mariadb-dump and mysqldump write them (line breaks escaped)")
      }
      out.append(";\n")
      try out.flushIfNeeded()
    }
    try advance(to: nil)
    try sink.beginPart(kind: .postData, table: nil)
    for b in post { render(b, to: out) }
    out.append("SET FOREIGN_KEY_CHECKS=1;\nSET UNIQUE_CHECKS=1;\n")
    try out.flush()
    try sink.endPart(rows: nil, contentChecksum: nil)
    let objects = (schema + post).filter(\.inManifest).compactMap(\.object)
    return Result(objects: objects, tables: order.map { ($0, rows[$0] ?? 0) }, serverVersion: serverVersion)
  }

  /// Appends `text` without the line breaks between its values (outside quotes); false when a
  /// quoted value holds a raw line break.
  static func oneLine(_ text: [UInt8], to out: OutputBuffer) -> Bool {
    var quote: UInt8 = 0
    var i = 0
    let n = text.count
    var start = 0
    while i < n {
      let c = text[i]
      if quote != 0 {
        if c == 0x5C {
          i += 2
          continue
        }
        if c == 0x0A || c == 0x0D { return false }
        if c == quote { quote = 0 }
      } else if c == 0x27 || c == 0x22 || c == 0x60 {
        quote = c
      } else if c == 0x0A || c == 0x0D {
        text.withUnsafeBytes { out.append(UnsafeRawBufferPointer(rebasing: $0[start..<i])) }
        start = i + 1
      }
      i += 1
    }
    text.withUnsafeBytes { out.append(UnsafeRawBufferPointer(rebasing: $0[start..<n])) }
    return true
  }

  static func noDefiner(_ text: [UInt8]) -> [UInt8] {
    Array(stripDefiner(String(decoding: text, as: UTF8.self)).utf8)
  }

  static func render(_ b: Block, to out: OutputBuffer) {
    if let o = b.object { out.append(Bytes.markerPrefix + Bytes.markerJSON(o) + "\n") }
    for (text, d) in b.statements {
      if d == [0x3B] {
        out.append(contentsOf: text)
        out.append(";\n")
      } else {
        out.append("DELIMITER ")
        out.append(contentsOf: d)
        out.append("\n")
        out.append(contentsOf: text)
        out.append(contentsOf: d)
        out.append("\nDELIMITER ;\n")
      }
    }
    out.append("\n")
  }

  /// The statement's words with version comments (`/*!50003 … */`) opened up, upper-cased.
  static func words(_ text: [UInt8]) -> String {
    var s = String(decoding: text.prefix(600), as: UTF8.self)
    while let r = s.range(of: #"/\*[!M]!?[0-9]*"#, options: .regularExpression) {
      s.replaceSubrange(r, with: " ")
    }
    s = s.replacingOccurrences(of: "*/", with: " ")
    return s
  }

  /// The first backquoted identifier after `keyword` (a whole word) in `s`.
  static func identifier(after keyword: String, in s: String) -> String? {
    var start = s.startIndex
    if !keyword.isEmpty {
      let pattern = "\\b" + keyword + (keyword.last!.isLetter ? "\\b" : "")
      guard let k = s.range(of: pattern, options: [.regularExpression, .caseInsensitive]) else { return nil }
      start = k.upperBound
    }
    var i = s[start...].drop { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
    if i.uppercased().hasPrefix("IF NOT EXISTS") { i = i.dropFirst(13).drop { $0 == " " } }
    guard i.first == "`" else {
      let plain = i.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "$" }
      return plain.isEmpty ? nil : String(plain)
    }
    var name = ""
    var j = i.index(after: i.startIndex)
    while j < i.endIndex {
      if i[j] == "`" {
        let n = i.index(after: j)
        if n < i.endIndex && i[n] == "`" {
          name.append("`")
          j = i.index(after: n)
          continue
        }
        return name
      }
      name.append(i[j])
      j = i.index(after: j)
    }
    return nil
  }

  static func classify(_ text: [UInt8]) -> Kind {
    let first = text.prefix(40)
    if MyText.startsWithWord(first, "INSERT ") || MyText.startsWithWord(first, "REPLACE ") {
      return identifier(after: "INTO", in: String(decoding: text.prefix(400), as: UTF8.self)).map {
        .data($0)
      } ?? .other
    }
    let w = words(text).trimmingCharacters(in: .whitespacesAndNewlines)
    let u = w.uppercased()
    func has(_ word: String) -> Bool { u.range(of: "\\b\(word)\\b", options: .regularExpression) != nil }
    if u.hasPrefix("LOCK TABLES") || u.hasPrefix("UNLOCK TABLES") || u.hasPrefix("USE ")
      || u.hasPrefix("COMMIT")
      || u.hasPrefix("SET AUTOCOMMIT") || u.hasPrefix("START TRANSACTION")
      || u.hasPrefix("CREATE DATABASE") || u.hasPrefix("CREATE SCHEMA")
      || (u.hasPrefix("ALTER TABLE") && (has("DISABLE KEYS") || has("ENABLE KEYS")))
    {
      return .skip
    }
    if u.hasPrefix("DROP") {
      if has("VIEW") || has("TABLE") { return .dropForView }
      return .skip
    }
    if u.hasPrefix("SET ") {
      // `SET x = @saved_x` restores what a statement before the object saved
      return u.range(of: #"=\s*@[A-Z_]"#, options: .regularExpression) != nil ? .restoreSet : .other
    }
    if u.hasPrefix("SELECT SETVAL") || u.hasPrefix("DO SETVAL") {
      return identifier(after: "SETVAL\\(", in: w).map { .sequenceValue($0) } ?? .other
    }
    guard u.hasPrefix("CREATE") else { return .other }
    // the object type: the first word after CREATE that is not a modifier
    let modifiers: Set<String> = [
      "OR", "REPLACE", "SQL", "SECURITY", "DEFINER", "INVOKER", "TEMPORARY", "AGGREGATE",
    ]
    var rest = Substring(w.dropFirst(6))
    var type = ""
    while !rest.isEmpty {
      rest = rest.drop { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
      var word = rest.prefix { $0 != " " && $0 != "\n" && $0 != "\t" && $0 != "\r" }
      if word.uppercased().hasPrefix("DEFINER=") {
        // DEFINER=`user`@`host`: the quoted parts may hold spaces
        var i = word.startIndex
        var quoted = false
        var j = rest.startIndex
        while j < rest.endIndex && (quoted || !(rest[j] == " " || rest[j] == "\n")) {
          if rest[j] == "`" || rest[j] == "'" { quoted.toggle() }
          j = rest.index(after: j)
        }
        i = j
        word = rest[rest.startIndex..<i]
      }
      rest = rest.dropFirst(word.count)
      let up = word.uppercased()
      if up.contains("=") || modifiers.contains(up) { continue }
      type = up
      break
    }
    let tail = String(rest)
    switch type {
    case "TABLE": return identifier(after: "", in: tail).map { .table($0) } ?? .other
    case "SEQUENCE": return identifier(after: "", in: tail).map { .sequence($0) } ?? .other
    case "VIEW": return identifier(after: "", in: tail).map { .view($0) } ?? .other
    case "PROCEDURE", "FUNCTION":
      return identifier(after: "", in: tail).map { .routine(type.lowercased(), $0) } ?? .other
    case "EVENT": return identifier(after: "", in: tail).map { .event($0) } ?? .other
    case "TRIGGER":
      guard let name = identifier(after: "", in: tail),
        let on = tail.range(of: #"\sON\s"#, options: [.regularExpression, .caseInsensitive]),
        let table = identifier(after: "", in: String(tail[on.upperBound...]))
      else { return .other }
      return .trigger(name, table)
    default: return .other
    }
  }

  /// The rows of a multi-row INSERT: the parenthesised groups after VALUES, outside quotes.
  static func countTuples(_ text: [UInt8]) -> Int64 {
    guard let values = findValues(text) else { return 0 }
    var n: Int64 = 0
    var depth = 0
    var i = values
    let count = text.count
    while i < count {
      let c = text[i]
      if c == 0x27 || c == 0x22 {
        i += 1
        while i < count {
          if text[i] == 0x5C {
            i += 2
            continue
          }
          if text[i] == c {
            if i + 1 < count && text[i + 1] == c {
              i += 2
              continue
            }
            break
          }
          i += 1
        }
      } else if c == 0x28 {
        if depth == 0 { n += 1 }
        depth += 1
      } else if c == 0x29 {
        depth -= 1
      }
      i += 1
    }
    return n
  }

  static func findValues(_ text: [UInt8]) -> Int? {
    let key = Array("VALUES".utf8)
    var i = 0
    var inTick = false
    while i + key.count <= text.count {
      let c = text[i]
      if c == 0x60 { inTick.toggle() }
      if !inTick && (c | 0x20) == 0x76
        && text[i..<(i + key.count)].elementsEqual(key, by: { ($0 & 0xDF) == $1 })
      {
        return i + key.count
      }
      i += 1
    }
    return nil
  }
}

/// Reads a MySQL script statement by statement as the `mariadb` client does (quotes, comments,
/// `DELIMITER` lines), streaming: a statement is held in memory, never the script.
struct MyScriptReader {
  let reader: InputReader
  init(_ source: ByteSource) { reader = InputReader(source) }

  func forEach(comment: ([UInt8]) throws -> Void, _ body: ([UInt8], [UInt8]) throws -> Void) throws {
    var delimiter: [UInt8] = [0x3B]
    var statement: [UInt8] = []
    var line: [UInt8] = []
    // scanner state carried across the lines of one statement
    var quote: UInt8 = 0
    var inBlockComment = false
    var scanned = 0
    while try reader.readLine(into: &line) {
      if statement.isEmpty {
        var first = 0
        while first < line.count && (line[first] == 0x20 || line[first] == 0x09) { first += 1 }
        let rest = line[first...]
        if rest.allSatisfy(MyText.isSpace) { continue }
        if rest.starts(with: [0x2D, 0x2D]) || rest.starts(with: [0x23]) {
          try comment(Array(rest))
          continue
        }
        // mariadb-dump's first line (`/*M!999999\- enable the sandbox mode */`) is for the client
        if rest.starts(with: Array("/*M!999999".utf8)) { continue }
        if MyText.startsWithWord(rest, "DELIMITER ") {
          delimiter = Array(rest.dropFirst(10)).filter { !MyText.isSpace($0) }
          guard !delimiter.isEmpty else { throw BackupError(.corrupt, "DELIMITER line without a delimiter") }
          continue
        }
        statement.append(contentsOf: rest)
      } else {
        statement.append(contentsOf: line)
      }
      // statements that end in this line (a line may hold more than one)
      while let e = scan(
        statement, from: &scanned, delimiter: delimiter, quote: &quote, inComment: &inBlockComment)
      {
        var text = Array(statement[..<e])
        while let last = text.last, MyText.isSpace(last) { text.removeLast() }
        let rest = Array(statement[(e + delimiter.count)...].drop(while: MyText.isSpace))
        statement = rest
        scanned = 0
        quote = 0
        inBlockComment = false
        if !text.isEmpty { try body(text, delimiter) }
      }
    }
    guard statement.allSatisfy(MyText.isSpace) else {
      throw BackupError(.corrupt, "the dump ends inside a statement", hint: "the dump is truncated")
    }
  }

  /// The index of `delimiter` in `s` outside quotes and comments, scanning on from `from` with
  /// the state the previous scan of the same statement left.
  func scan(_ s: [UInt8], from: inout Int, delimiter: [UInt8], quote: inout UInt8, inComment: inout Bool)
    -> Int?
  {
    var i = from
    let n = s.count
    defer { from = min(i, n) }
    while i < n {
      let c = s[i]
      if inComment {
        if c == 0x2A && i + 1 < n && s[i + 1] == 0x2F {
          inComment = false
          i += 2
        } else {
          i += 1
        }
        continue
      }
      if quote != 0 {
        if c == 0x5C && quote != 0x60 {
          i += 2
          continue
        }
        if c == quote {
          if i + 1 < n && s[i + 1] == quote {
            i += 2
            continue
          }
          quote = 0
        }
        i += 1
        continue
      }
      if c == 0x27 || c == 0x22 || c == 0x60 {
        quote = c
      } else if c == 0x2F && i + 1 < n && s[i + 1] == 0x2A
        && !(i + 2 < n && (s[i + 2] == 0x21 || s[i + 2] == 0x4D))
      {
        // a plain comment (version comments `/*!…*/`, `/*M!…*/` hold statement text)
        inComment = true
        i += 2
        continue
      } else if (c == 0x2D && i + 2 < n && s[i + 1] == 0x2D && MyText.isSpace(s[i + 2])) || c == 0x23 {
        while i < n && s[i] != 0x0A { i += 1 }
        continue
      } else if c == delimiter[0] && i + delimiter.count <= n
        && s[i..<(i + delimiter.count)].elementsEqual(delimiter)
      {
        return i
      }
      i += 1
    }
    return nil
  }
}
