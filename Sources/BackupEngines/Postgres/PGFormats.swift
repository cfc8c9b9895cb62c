import BackupModel
import Foundation

/// How a column's values are written in the json format (docs/FORMAT.md, "PostgreSQL (formats
/// csv and json)"): integers and floating-point/numeric values as JSON numbers when their text
/// is one, booleans as JSON booleans, everything else as a JSON string of its text form.
enum PGJSONKind {
  case number, boolean, text

  init(typeName: String) {
    switch typeName {
    case "int2", "int4", "int8", "oid", "float4", "float8", "numeric": self = .number
    case "bool": self = .boolean
    default: self = .text
    }
  }
}

/// A table's dumped columns: `copyList` as `COPY t (…)` names them (quoted, comma-separated;
/// empty for a table without columns) and `columns` (empty in the sql format, which needs none).
struct PGDumpColumns {
  var copyList: String
  var columns: [PGColumn]
}

/// A dumped column: its name, its type as `format_type` writes it and how json writes it.
struct PGColumn {
  var name: String
  var type: String
  var kind: PGJSONKind
}

extension PGConnection {
  /// What each table's dump needs from the catalog: the COPY column list, and for the json and
  /// csv formats the columns themselves; one query for all the tables (a database of thousands
  /// of tables would otherwise cost a round trip, a parse and a plan each).
  func dumpColumns(of tables: [PGTable], format: DumpFormat) throws -> [PGDumpColumns] {
    guard !tables.isEmpty else { return [] }
    var byTable: [String: PGDumpColumns] = [:]
    for r in try query(
      """
      SELECT a.attrelid::text, pg_catalog.quote_ident(a.attname), a.attname,
             pg_catalog.format_type(a.atttypid, a.atttypmod), t.typname
      FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
      WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
      ORDER BY a.attrelid, a.attnum
      """, [tables.oidArrayLiteral])
    {
      var shape = byTable[r[0]!] ?? PGDumpColumns(copyList: "", columns: [])
      shape.copyList += (shape.copyList.isEmpty ? "" : ", ") + r[1]!
      if format != .sql {
        shape.columns.append(PGColumn(name: r[2]!, type: r[3]!, kind: PGJSONKind(typeName: r[4]!)))
      }
      byTable[r[0]!] = shape
    }
    return tables.map { byTable[$0.oid] ?? PGDumpColumns(copyList: "", columns: []) }
  }

  /// The quoted qualified name of the table "schema.table" in this database, or nil.
  func quotedTable(_ name: String) throws -> String? {
    try query(
      """
      SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname || '.' || c.relname = $1
      """, [name]
    ).first?.first ?? nil
  }
}

/// Conversions between the rows of `COPY … TO STDOUT` in text format and the csv and json
/// formats. Every value keeps PostgreSQL's own text form, so a restore through `COPY FROM STDIN`
/// gives back exactly the dumped values, whatever their type.
enum PGRowFormat {
  /// Decodes one field of a text-format COPY line (backslash escapes) into `out`.
  static func unescapeField(_ f: UnsafeRawBufferPointer, into out: inout [UInt8]) {
    var i = 0
    let n = f.count
    while i < n {
      let c = f[i]
      guard c == 0x5C, i + 1 < n else {
        out.append(c)
        i += 1
        continue
      }
      let e = f[i + 1]
      i += 2
      switch e {
      case UInt8(ascii: "b"): out.append(0x08)
      case UInt8(ascii: "f"): out.append(0x0C)
      case UInt8(ascii: "n"): out.append(0x0A)
      case UInt8(ascii: "r"): out.append(0x0D)
      case UInt8(ascii: "t"): out.append(0x09)
      case UInt8(ascii: "v"): out.append(0x0B)
      case UInt8(ascii: "0")...UInt8(ascii: "7"):
        var v = UInt32(e - 0x30)
        var k = 0
        while k < 2 && i < n && f[i] >= 0x30 && f[i] <= 0x37 {
          v = v * 8 + UInt32(f[i] - 0x30)
          i += 1
          k += 1
        }
        out.append(UInt8(truncatingIfNeeded: v))
      case UInt8(ascii: "x") where i < n && Bytes.nibble(f[i]) != nil:
        var v = Bytes.nibble(f[i])!
        i += 1
        if i < n, let d = Bytes.nibble(f[i]) {
          v = v << 4 | d
          i += 1
        }
        out.append(v)
      default: out.append(e)
      }
    }
  }

  /// Appends bytes escaped for a text-format COPY field.
  static func appendEscaped(_ b: UnsafeRawBufferPointer, to out: inout [UInt8]) {
    for c in b {
      switch c {
      case 0x5C: out += [0x5C, 0x5C]
      case 0x0A: out += [0x5C, UInt8(ascii: "n")]
      case 0x0D: out += [0x5C, UInt8(ascii: "r")]
      case 0x09: out += [0x5C, UInt8(ascii: "t")]
      default: out.append(c)
      }
    }
  }

  /// Calls `body` with each field of a text-format COPY line (without its "\n"); nil is NULL.
  @inline(__always)
  static func forEachField(_ line: UnsafeRawBufferPointer, _ body: (Int, UnsafeRawBufferPointer?) -> Void) {
    var n = line.count
    if n > 0 && line[n - 1] == 0x0A { n -= 1 }
    var start = 0
    var index = 0
    var i = 0
    while i <= n {
      if i == n || line[i] == 0x09 {
        let f = UnsafeRawBufferPointer(rebasing: line[start..<i])
        let isNull = f.count == 2 && f[0] == 0x5C && f[1] == UInt8(ascii: "N")
        body(index, isNull ? nil : f)
        index += 1
        start = i + 1
      }
      i += 1
    }
  }

  /// The csv header record: every column name double-quoted.
  static func csvHeader(_ columns: [PGColumn]) -> [UInt8] {
    var out: [UInt8] = []
    for (i, c) in columns.enumerated() {
      if i > 0 { out.append(0x2C) }
      appendCSVQuoted(Array(c.name.utf8), to: &out)
    }
    out.append(0x0A)
    return out
  }

  static func appendCSVQuoted(_ b: [UInt8], to out: inout [UInt8]) {
    out.append(0x22)
    for c in b {
      out.append(c)
      if c == 0x22 { out.append(0x22) }
    }
    out.append(0x22)
  }

  /// One text-format COPY line as a csv record: NULL is an empty unquoted field, every other
  /// value is double-quoted (so the empty string is `""`).
  static func appendCSV(_ line: UnsafeRawBufferPointer, to out: inout [UInt8], scratch: inout [UInt8]) {
    forEachField(line) { i, f in
      if i > 0 { out.append(0x2C) }
      guard let f else { return }
      scratch.removeAll(keepingCapacity: true)
      unescapeField(f, into: &scratch)
      appendCSVQuoted(scratch, to: &out)
    }
    out.append(0x0A)
  }

  /// The json header line of a table part.
  static func jsonHeader(table: String, columns: [PGColumn]) -> [UInt8] {
    var out = Array("{\"$table\":".utf8)
    Bytes.appendJSONString(table, to: &out)
    out += Array(",\"columns\":[".utf8)
    for (i, c) in columns.enumerated() {
      if i > 0 { out.append(0x2C) }
      out += Array("{\"name\":".utf8)
      Bytes.appendJSONString(c.name, to: &out)
      out += Array(",\"type\":".utf8)
      Bytes.appendJSONString(c.type, to: &out)
      out.append(0x7D)
    }
    out += Array("]}\n".utf8)
    return out
  }

  /// True for the JSON number grammar (`-?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?`).
  static func isJSONNumber(_ b: [UInt8]) -> Bool {
    var i = 0
    let n = b.count
    func digits() -> Int {
      let s = i
      while i < n && b[i] >= 0x30 && b[i] <= 0x39 { i += 1 }
      return i - s
    }
    if i < n && b[i] == 0x2D { i += 1 }
    let start = i
    let d = digits()
    guard d > 0, d == 1 || b[start] != 0x30 else { return false }
    if i < n && b[i] == 0x2E {
      i += 1
      guard digits() > 0 else { return false }
    }
    if i < n && (b[i] == 0x65 || b[i] == 0x45) {
      i += 1
      if i < n && (b[i] == 0x2B || b[i] == 0x2D) { i += 1 }
      guard digits() > 0 else { return false }
    }
    return i == n
  }

  /// One text-format COPY line as a json object keyed by column name.
  static func appendJSON(
    _ line: UnsafeRawBufferPointer, columns: [PGColumn], keys: [[UInt8]], to out: inout [UInt8],
    scratch: inout [UInt8]
  ) {
    out.append(0x7B)
    forEachField(line) { i, f in
      if i > 0 { out.append(0x2C) }
      out += keys[i]
      guard let f else {
        out += Array("null".utf8)
        return
      }
      scratch.removeAll(keepingCapacity: true)
      unescapeField(f, into: &scratch)
      switch columns[i].kind {
      case .boolean where scratch == [UInt8(ascii: "t")]:
        out += Array("true".utf8)
      case .boolean where scratch == [UInt8(ascii: "f")]:
        out += Array("false".utf8)
      case .number where isJSONNumber(scratch):
        out += scratch
      default:
        let valid = scratch.allSatisfy { $0 < 0x80 } || scratch.withUnsafeBytes { Bytes.isValidUTF8($0) }
        if valid {
          out.append(0x22)
          scratch.withUnsafeBytes { Bytes.appendJSONEscaped($0, to: &out) }
          out.append(0x22)
        } else {
          out += Array("{\"$text64\":\"".utf8)
          scratch.withUnsafeBytes { Bytes.appendBase64($0, to: &out) }
          out += Array("\"}".utf8)
        }
      }
    }
    out += [0x7D, 0x0A]
  }

  /// The `"name":` prefix of each column in a json row.
  static func jsonKeys(_ columns: [PGColumn]) -> [[UInt8]] {
    columns.map { c in
      var k: [UInt8] = []
      Bytes.appendJSONString(c.name, to: &k)
      k.append(0x3A)
      return k
    }
  }
}

/// Reads one json row object back into a text-format COPY line (restore).
struct PGJSONRowReader {
  let table: String
  let names: [[UInt8]]
  private var value: [UInt8] = []
  private var fields: [[UInt8]?]

  init(table: String, columns: [String]) {
    self.table = table
    names = columns.map { Array($0.utf8) }
    fields = Array(repeating: nil, count: columns.count)
  }

  private func bad(_ what: String) -> BackupError {
    BackupError(.corrupt, "bad json row in the data of \(table): \(what)")
  }

  /// Parses `line` (one object) and appends its COPY text line to `out`.
  mutating func convert(_ line: [UInt8], into out: inout [UInt8]) throws {
    for k in fields.indices { fields[k] = nil }
    var seen = 0
    try line.withUnsafeBufferPointer { p in
      var i = 0
      let n = p.count
      func ws() { while i < n && (p[i] == 0x20 || p[i] == 0x09 || p[i] == 0x0A || p[i] == 0x0D) { i += 1 } }
      ws()
      guard i < n, p[i] == 0x7B else { throw bad("not an object") }
      i += 1
      ws()
      if i < n && p[i] == 0x7D {
        i += 1
      } else {
        while true {
          ws()
          guard i < n, p[i] == 0x22 else { throw bad("expected a key") }
          i += 1
          var key: [UInt8] = []
          try parseString(p, &i, into: &key)
          ws()
          guard i < n, p[i] == 0x3A else { throw bad("expected ':'") }
          i += 1
          ws()
          let hint = seen
          let idx: Int
          if hint < names.count && names[hint] == key {
            idx = hint
          } else if let j = names.firstIndex(of: key) {
            idx = j
          } else {
            throw bad("unknown column \"\(String(decoding: key, as: UTF8.self))\"")
          }
          seen += 1
          fields[idx] = try parseValue(p, &i)
          ws()
          guard i < n else { throw bad("unterminated object") }
          if p[i] == 0x2C {
            i += 1
            continue
          }
          guard p[i] == 0x7D else { throw bad("expected ',' or '}'") }
          i += 1
          break
        }
      }
      ws()
      guard i == n else { throw bad("text after the object") }
    }
    for (k, f) in fields.enumerated() {
      if k > 0 { out.append(0x09) }
      if let f {
        f.withUnsafeBytes { PGRowFormat.appendEscaped($0, to: &out) }
      } else {
        out += [0x5C, UInt8(ascii: "N")]
      }
    }
    out.append(0x0A)
  }

  /// A value as the bytes of its PostgreSQL text form; nil for JSON null.
  private mutating func parseValue(_ p: UnsafeBufferPointer<UInt8>, _ i: inout Int) throws -> [UInt8]? {
    let n = p.count
    guard i < n else { throw bad("missing value") }
    func literal(_ s: String) -> Bool {
      let b = Array(s.utf8)
      guard i + b.count <= n, p[i..<(i + b.count)].elementsEqual(b) else { return false }
      i += b.count
      return true
    }
    switch p[i] {
    case 0x22:
      i += 1
      value.removeAll(keepingCapacity: true)
      try parseString(p, &i, into: &value)
      return value
    case 0x7B:
      // {"$text64":"…"}: text that is not valid UTF-8
      i += 1
      while i < n && p[i] == 0x20 { i += 1 }
      guard literal("\"$text64\"") else { throw bad("unknown value object") }
      while i < n && (p[i] == 0x20 || p[i] == 0x3A) { i += 1 }
      guard i < n, p[i] == 0x22 else { throw bad("bad $text64") }
      i += 1
      var b64: [UInt8] = []
      try parseString(p, &i, into: &b64)
      while i < n && p[i] == 0x20 { i += 1 }
      guard i < n, p[i] == 0x7D else { throw bad("bad $text64") }
      i += 1
      return try Bytes.decodeBase64(b64[...])
    default:
      if literal("null") { return nil }
      if literal("true") { return [UInt8(ascii: "t")] }
      if literal("false") { return [UInt8(ascii: "f")] }
      let s = i
      while i < n
        && ((p[i] >= 0x30 && p[i] <= 0x39) || p[i] == 0x2D || p[i] == 0x2B || p[i] == 0x2E || p[i] == 0x65
          || p[i] == 0x45)
      {
        i += 1
      }
      let num = Array(p[s..<i])
      guard PGRowFormat.isJSONNumber(num) else { throw bad("bad value") }
      return num
    }
  }

  /// A string whose opening quote was consumed; escapes decoded.
  private func parseString(_ p: UnsafeBufferPointer<UInt8>, _ i: inout Int, into out: inout [UInt8]) throws {
    if let problem = Bytes.decodeJSONString(p, &i, into: &out) { throw bad(problem) }
  }
}

/// The csv header record's column names (RFC 4180 quoting), read from the start of a table entry.
struct CSVHeaderReader {
  /// Parses one record from `reader`, consuming at most `limit` bytes; returns the names and the
  /// number of bytes consumed.
  static func read(_ reader: InputReader, limit: Int64, table: String) throws -> ([String], Int64) {
    var names: [String] = []
    var field: [UInt8] = []
    var used: Int64 = 0
    var line: [UInt8] = []
    var inQuotes = false
    var afterQuote = false
    while true {
      guard try reader.readLine(into: &line) else {
        throw BackupError(.corrupt, "the csv data of \(table) has no header row")
      }
      used += Int64(line.count)
      guard used <= limit else { throw BackupError(.corrupt, "the csv header of \(table) is truncated") }
      for c in line {
        if inQuotes {
          if c == 0x22 {
            inQuotes = false
            afterQuote = true
          } else {
            field.append(c)
          }
        } else if c == 0x22 {
          if afterQuote { field.append(0x22) }
          inQuotes = true
          afterQuote = false
        } else if c == 0x2C || c == 0x0A {
          names.append(String(decoding: field, as: UTF8.self))
          field.removeAll()
          afterQuote = false
          if c == 0x0A { return (names, used) }
        } else if c != 0x0D {
          field.append(c)
        }
      }
      if !inQuotes { return (names + [String(decoding: field, as: UTF8.self)], used) }
    }
  }
}

/// How the schema and post-data scripts sit in each format (docs/FORMAT.md): as they are (sql),
/// as the tar entries `schema.sql` / `post-data.sql` (csv, whose post-data part also ends the
/// archive), or as json lines, one per schema object (json).
struct PGPartLayout {
  var format: DumpFormat
  var mtime: Int64

  static let backupHeader = Array(
    "{\"$backup\":{\"engine\":\"postgres\",\"format\":\"json\",\"formatVersion\":1}}\n".utf8)

  /// The raw content of the schema or post-data part holding `script`.
  func scriptPart(_ kind: PartKind, _ script: [UInt8]) throws -> [UInt8] {
    switch format {
    case .sql:
      return script
    case .csv:
      var out = Tar.header(
        name: kind == .schema ? "schema.sql" : "post-data.sql", size: Int64(script.count), mtime: mtime)
      out += script
      out += [UInt8](repeating: 0, count: Tar.paddingCount(for: Int64(script.count)))
      if kind == .postData { out += Tar.endOfArchive }
      return out
    case .json:
      var out = kind == .schema ? PGPartLayout.backupHeader : []
      try PGPartLayout.appendJSONLines(script, to: &out)
      return out
    }
  }

  /// Cuts an annotated script into json lines: `{"$object":{marker},"sql":"…"}` for each
  /// object's statements, `{"$sql":"…"}` for statements before the first marker (the script's
  /// SET lines). Comments and psql meta-commands are left out.
  static func appendJSONLines(_ b: [UInt8], to out: inout [UInt8]) throws {
    let prefix = Array(Bytes.markerPrefix.utf8)
    var marker: ArraySlice<UInt8>?
    var sql: [UInt8] = []
    func flush() {
      guard !sql.isEmpty else { return }
      if let marker {
        out += Array("{\"$object\":".utf8) + marker + Array(",\"sql\":\"".utf8)
      } else {
        out += Array("{\"$sql\":\"".utf8)
      }
      sql.withUnsafeBytes { Bytes.appendJSONEscaped($0, to: &out) }
      out += Array("\"}\n".utf8)
      sql.removeAll()
    }
    for piece in try PGText.pieces(b) {
      switch piece {
      case .line(let r):
        guard b[r].starts(with: prefix) else { continue }
        flush()
        var e = r.upperBound
        while e > r.lowerBound && (b[e - 1] == 0x0A || b[e - 1] == 0x0D) { e -= 1 }
        marker = b[(r.lowerBound + prefix.count)..<e]
      case .statement(let r):
        var start = r.lowerBound
        while start < r.upperBound && PGText.isBlank(b[start..<(start + 1)]) { start += 1 }
        sql += b[start..<r.upperBound]
      }
    }
    flush()
  }

  /// The script held by a schema or post-data part's raw content (the inverse of `scriptPart`).
  func script(of kind: PartKind, from reader: InputReader) throws -> [UInt8] {
    switch format {
    case .sql:
      var bytes: [UInt8] = []
      while try reader.read(upTo: 1 << 20, appendingTo: &bytes) > 0 {}
      return bytes
    case .csv:
      let expected = kind == .schema ? "schema.sql" : "post-data.sql"
      guard let entry = try Tar.readHeader(from: reader), entry.name == expected else {
        throw BackupError(
          .corrupt, "the \(kind.rawValue) part of this csv backup does not start with \(expected)")
      }
      let bytes = try reader.readExactly(Int(entry.size))
      try reader.skip(Tar.paddingCount(for: entry.size))
      if kind == .postData {
        guard try Tar.readHeader(from: reader) == nil else {
          throw BackupError(.corrupt, "unexpected tar entry after post-data.sql")
        }
      }
      return bytes
    case .json:
      var out: [UInt8] = []
      var line: [UInt8] = []
      while try reader.readLine(into: &line) {
        guard line.contains(where: { !PGText.isBlank([$0][...]) }) else { continue }
        let value: PGScriptLine
        do {
          value = try JSONDecoder().decode(PGScriptLine.self, from: Data(line))
        } catch {
          throw BackupError(
            .corrupt,
            "bad json line in the \(kind.rawValue) part: \(oneLine(String(decoding: line.prefix(200), as: UTF8.self)))"
          )
        }
        if let b = value.backup {
          guard b.engine == "postgres", b.format == "json" else {
            throw BackupError(.corrupt, "this json backup is not a PostgreSQL backup (engine \(b.engine))")
          }
        } else if let o = value.object, let sql = value.objectSQL {
          out += Array((Bytes.markerPrefix + Bytes.markerJSON(o) + "\n").utf8) + Array(sql.utf8) + [0x0A]
        } else if let sql = value.sql {
          out += Array(sql.utf8) + [0x0A]
        } else {
          throw BackupError(.corrupt, "unknown json line in the \(kind.rawValue) part")
        }
      }
      return out
    }
  }
}

/// One line of a json schema or post-data part.
struct PGScriptLine: Decodable {
  struct Backup: Decodable {
    var engine: String
    var format: String
  }
  var backup: Backup?
  var object: SchemaObject?
  var objectSQL: String?
  var sql: String?
  enum CodingKeys: String, CodingKey {
    case backup = "$backup"
    case object = "$object"
    case objectSQL = "sql"
    case sql = "$sql"
  }
}
