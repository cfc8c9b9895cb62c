import BackupModel
import Foundation

/// The table a pg_dump TOC entry belongs to, as a resolver sees it.
enum PGEntryTable {
  /// The entry belongs to this table ("schema.table"), or to none (a schema-wide object).
  case table(String?)
  /// Not known yet: ask again (with `final`) after the next entry (a serial column's
  /// `CREATE SEQUENCE` is followed by the `SEQUENCE OWNED BY` entry that names its table).
  case later

  var table: String? {
    if case .table(let t) = self { return t }
    return nil
  }
}

/// Works out which table each TOC entry of a pg_dump script belongs to.
protocol PGEntryResolver {
  /// `statement` is the entry's first SQL statement (nil if it has none); `final` forbids `.later`.
  mutating func resolve(_ header: TOCHeader, statement: ArraySlice<UInt8>?, final: Bool) -> PGEntryTable
}

/// Adds an ai-shell object marker (docs/FORMAT.md, "Object markers") after each `-- Name: …` /
/// `-- Data for Name: …` TOC header of pg_dump output fed to it piece by piece (PGText.Piece),
/// used for our own pre-data and post-data sections and for imported plain-format scripts. An
/// entry's output is held from its header to its first statement (the resolver reads the
/// statement), and a `.later` entry until the next entry is resolved: never more than two
/// entries' heads, so a script of any size streams through.
struct PGAnnotator<Resolver: PGEntryResolver> {
  var resolver: Resolver
  private(set) var objects: [SchemaObject] = []

  private struct Entry {
    var header: TOCHeader
    var bytes: [UInt8]
    var markerAt: Int
    var statement: [UInt8]?
  }
  /// Header seen, first statement not yet.
  private var open: Entry?
  /// Resolved `.later`: held whole until the next entry is resolved.
  private var deferred: Entry?

  init(_ resolver: Resolver) { self.resolver = resolver }

  static func header(_ b: ArraySlice<UInt8>) -> TOCHeader? { TOCHeader(b) }

  /// A comment, blank or meta-command line.
  mutating func line(_ b: ArraySlice<UInt8>, to out: inout [UInt8]) {
    if let h = Self.header(b) {
      close(statement: nil, to: &out)
      open = Entry(header: h, bytes: Array(b), markerAt: b.count)
    } else {
      append(b, to: &out)
    }
  }

  /// A whole statement (up to the end of the line holding its `;`).
  mutating func statement(_ b: ArraySlice<UInt8>, to out: inout [UInt8]) {
    if open != nil {
      open!.bytes += b
      close(statement: b, to: &out)
    } else {
      append(b, to: &out)
    }
  }

  /// Writes out everything held (at the end of a part).
  mutating func finish(to out: inout [UInt8]) {
    close(statement: nil, to: &out)
    if let d = deferred {
      deferred = nil
      emit(d, table: resolver.resolve(d.header, statement: d.statement?[...], final: true).table, to: &out)
    }
  }

  /// Annotates a whole script (our own pg_dump sections); unchanged if it does not lex.
  mutating func annotate(_ b: [UInt8]) -> [UInt8] {
    guard let pieces = try? PGText.pieces(b) else { return b }
    var out: [UInt8] = []
    out.reserveCapacity(b.count + b.count / 8)
    for p in pieces {
      switch p {
      case .line(let r): line(b[r], to: &out)
      case .statement(let r): statement(b[r], to: &out)
      }
    }
    finish(to: &out)
    return out
  }

  /// The objects marked since the last call.
  mutating func takeObjects() -> [SchemaObject] {
    defer { objects = [] }
    return objects
  }

  private mutating func append(_ b: ArraySlice<UInt8>, to out: inout [UInt8]) {
    if open != nil {
      open!.bytes += b
    } else if deferred != nil {
      deferred!.bytes += b
    } else {
      out += b
    }
  }

  private mutating func close(statement: ArraySlice<UInt8>?, to out: inout [UInt8]) {
    guard var e = open else { return }
    open = nil
    let r = resolver.resolve(e.header, statement: statement, final: false)
    if let d = deferred {
      deferred = nil
      emit(d, table: resolver.resolve(d.header, statement: d.statement?[...], final: true).table, to: &out)
    }
    if case .later = r {
      e.statement = statement.map(Array.init)
      deferred = e
      return
    }
    emit(e, table: r.table, to: &out)
  }

  private mutating func emit(_ e: Entry, table: String?, to out: inout [UInt8]) {
    let h = e.header
    let o = SchemaObject(
      type: h.type.lowercased(), name: h.schema.map { "\($0).\(h.tag)" } ?? h.tag, table: table)
    objects.append(o)
    out += e.bytes[..<e.markerAt]
    out += Array((Bytes.markerPrefix + Bytes.markerJSON(o) + "\n").utf8)
    out += e.bytes[e.markerAt...]
  }
}

/// Our own dump: the catalog map read in the backup's snapshot decides; entries it does not
/// place (extended statistics, privileges and comments on view columns …) are read from their
/// statements.
struct PGCatalogResolver: PGEntryResolver {
  var map: ObjectTableMap
  var script = PGScriptResolver()

  mutating func resolve(_ header: TOCHeader, statement: ArraySlice<UInt8>?, final: Bool) -> PGEntryTable {
    let parsed = script.resolve(header, statement: statement, final: final)
    if let t = map.table(for: header) { return .table(t) }
    return parsed
  }
}

/// A pg_dump script without a catalog (`backup import`): each entry's table is read from its
/// first statement, which names it unambiguously (quoted identifiers), rather than from the
/// header, whose `Name: table object` cannot be split when names hold spaces. Indexes, unique
/// constraints and sequences met on the way are remembered for later entries that name only
/// them (`COMMENT ON INDEX`, `ALTER INDEX … ATTACH PARTITION`, `SEQUENCE SET`, `GRANT … ON
/// SEQUENCE`).
struct PGScriptResolver: PGEntryResolver {
  /// "schema.index" (and "schema.constraint") -> "schema.table".
  private(set) var indexes: [String: String] = [:]
  /// "schema.sequence" -> "schema.table" that owns it.
  private(set) var sequences: [String: String] = [:]

  mutating func resolve(_ h: TOCHeader, statement: ArraySlice<UInt8>?, final: Bool) -> PGEntryTable {
    let key = h.schema.map { "\($0).\(h.tag)" } ?? h.tag
    guard let statement else {
      switch h.type {
      case "TABLE DATA": return .table(key)
      case "SEQUENCE", "SEQUENCE SET": return .table(sequences[key])
      default: return .table(nil)
      }
    }
    let t = SQLTokens(statement)
    func name(_ i: Int) -> (String, Int)? {
      t.relation(at: i, defaultSchema: h.schema).map { ($0.full, $0.next) }
    }
    var i = 0
    switch t.word(0) {
    case "create":
      i = 1
      while ["or", "replace", "unique", "unlogged", "foreign", "constraint", "temp", "temporary"].contains(
        t.word(i))
      {
        i += 1
      }
      switch t.word(i) {
      case "table":
        i = t.skip(["if", "not", "exists"], from: i + 1)
        return .table(name(i)?.0)
      case "index":
        i = t.skip(["concurrently", "if", "not", "exists"], from: i + 1)
        var index: String?
        if t.word(i) != "on" {
          index = t.identifier(i)
          i += 1
        }
        guard t.word(i) == "on",
          let table = t.relation(at: t.skip(["only"], from: i + 1), defaultSchema: h.schema)
        else { return .table(nil) }
        if let index { indexes[table.schema + "." + index] = table.full }
        return .table(table.full)
      case "trigger", "policy":
        return .table(t.keyword("on", from: i + 1).flatMap { name($0 + 1)?.0 })
      case "rule":
        return .table(t.keyword("to", from: i + 1).flatMap { name($0 + 1)?.0 })
      case "statistics":
        return .table(t.keyword("from", from: i + 1).flatMap { name($0 + 1)?.0 })
      case "sequence":
        if let owner = sequences[key] { return .table(owner) }
        return final || h.type != "SEQUENCE" ? .table(nil) : .later
      default:
        return .table(nil)
      }
    case "alter":
      i = t.skip(["foreign"], from: 1)
      switch t.word(i) {
      case "table":
        guard
          let table = t.relation(at: t.skip(["if", "exists", "only"], from: i + 1), defaultSchema: h.schema)
        else { return .table(nil) }
        let next = table.next
        if t.word(next) == "attach" && t.word(next + 1) == "partition", let (child, _) = name(next + 2) {
          return .table(child)
        }
        if h.type == "SEQUENCE" { sequences[key] = table.full }  // an identity column's sequence
        if h.type == "CONSTRAINT", let c = t.keyword("constraint", from: next), let con = t.identifier(c + 1)
        {
          indexes[table.schema + "." + con] = table.full
        }
        return .table(table.full)
      case "index":
        guard let (_, next) = name(i + 1), t.word(next) == "attach", t.word(next + 1) == "partition",
          let (child, _) = name(next + 2)
        else { return .table(nil) }
        if let table = indexes[child] {
          if let s = h.schema { indexes["\(s).\(h.tag)"] = table }
          return .table(table)
        }
        return .table(nil)
      case "sequence":
        guard let (seq, next) = name(i + 1), t.word(next) == "owned", t.word(next + 1) == "by",
          let column = t.qualifiedName(at: next + 2), column.parts.count == 3
        else { return .table(nil) }
        let table = column.parts[0] + "." + column.parts[1]
        sequences[seq] = table
        return .table(table)
      default:
        return .table(nil)
      }
    case "comment":
      return .table(target(t, kindAt: 2, h))
    case "security":
      return .table(t.keyword("on", from: 2).flatMap { target(t, kindAt: $0 + 1, h) })
    case "grant", "revoke":
      return .table(t.keyword("on", from: 1).flatMap { target(t, kindAt: $0 + 1, h) })
    case "select":
      return .table(h.type == "SEQUENCE SET" ? sequences[key] : nil)
    case "insert":
      return .table(t.word(1) == "into" ? name(2)?.0 : nil)
    case "copy":
      return .table(name(1)?.0)
    default:
      return .table(nil)
    }
  }

  /// The table of the object a COMMENT, SECURITY LABEL, GRANT or REVOKE is about (`ON <kind> …`).
  private func target(_ t: SQLTokens, kindAt i: Int, _ h: TOCHeader) -> String? {
    func name(_ i: Int) -> String? { t.relation(at: i, defaultSchema: h.schema)?.full }
    switch t.word(i) {
    case "table": return name(i + 1)
    case "foreign": return t.word(i + 1) == "table" ? name(i + 2) : nil
    case "column":
      guard let n = t.qualifiedName(at: i + 1), n.parts.count >= 2 else { return nil }
      return n.parts.count == 2
        ? (h.schema ?? "public") + "." + n.parts[0]
        : n.parts[n.parts.count - 3] + "." + n.parts[n.parts.count - 2]
    case "index": return name(i + 1).flatMap { indexes[$0] }
    case "sequence": return name(i + 1).flatMap { sequences[$0] }
    case "constraint", "trigger", "rule", "policy":
      guard t.word(i + 2) == "on", t.word(i + 3) != "domain" else { return nil }
      return name(i + 3)
    default: return nil
    }
  }
}

/// The leading tokens of one SQL statement: words (unquoted, compared in lower case), quoted
/// identifiers, and punctuation with its parenthesis depth; string literals, dollar quotes and
/// comments are skipped.
struct SQLTokens {
  enum Kind { case word, quoted, punct, literal }
  struct Token {
    var kind: Kind
    var text: String
    var depth: Int
  }
  private(set) var tokens: [Token] = []

  init(_ b: ArraySlice<UInt8>, limit: Int = 4096) {
    var i = b.startIndex
    let end = b.endIndex
    var depth = 0
    func at(_ j: Int) -> UInt8 { j < end ? b[j] : 0 }
    while i < end && tokens.count < limit {
      let c = b[i]
      switch c {
      case 0x20, 0x09, 0x0A, 0x0D:
        i += 1
      case 0x2D where at(i + 1) == 0x2D:
        while i < end && b[i] != 0x0A { i += 1 }
      case 0x2F where at(i + 1) == 0x2A:
        var nested = 0
        repeat {
          if b[i] == 0x2F && at(i + 1) == 0x2A {
            nested += 1
            i += 2
          } else if b[i] == 0x2A && at(i + 1) == 0x2F {
            nested -= 1
            i += 2
          } else {
            i += 1
          }
        } while i < end && nested > 0
      case 0x27:
        let escapes = tokens.last.map { $0.kind == .word && $0.text.lowercased() == "e" } ?? false
        if escapes { tokens.removeLast() }
        i += 1
        while i < end {
          if escapes && b[i] == 0x5C {
            i += 2
          } else if b[i] == 0x27 {
            if at(i + 1) == 0x27 {
              i += 2
            } else {
              break
            }
          } else {
            i += 1
          }
        }
        i += 1
        tokens.append(Token(kind: .literal, text: "", depth: depth))
      case 0x22:
        var name: [UInt8] = []
        i += 1
        while i < end {
          if b[i] == 0x22 {
            if at(i + 1) == 0x22 {
              name.append(0x22)
              i += 2
              continue
            }
            break
          }
          name.append(b[i])
          i += 1
        }
        i += 1
        tokens.append(Token(kind: .quoted, text: String(decoding: name, as: UTF8.self), depth: depth))
      case 0x24 where !(at(i + 1) >= 0x30 && at(i + 1) <= 0x39):
        var j = i + 1
        while j < end && PGText.isIdentByte(b[j]) && b[j] != 0x24 { j += 1 }
        guard j < end && b[j] == 0x24 else {
          tokens.append(Token(kind: .punct, text: "$", depth: depth))
          i += 1
          continue
        }
        let tag = b[i...j]
        var k = j + 1
        while k + tag.count <= end && !b[k..<(k + tag.count)].elementsEqual(tag) { k += 1 }
        i = min(end, k + tag.count)
        tokens.append(Token(kind: .literal, text: "", depth: depth))
      case _ where PGText.isIdentByte(c):
        var j = i
        while j < end && PGText.isIdentByte(b[j]) { j += 1 }
        tokens.append(Token(kind: .word, text: String(decoding: b[i..<j], as: UTF8.self), depth: depth))
        i = j
      default:
        if c == 0x29 { depth -= 1 }
        tokens.append(Token(kind: .punct, text: String(UnicodeScalar(c)), depth: depth))
        if c == 0x28 { depth += 1 }
        i += 1
      }
    }
  }

  /// The lower-cased word at `i`, or "" (a quoted identifier is never a keyword).
  func word(_ i: Int) -> String {
    i < tokens.count && tokens[i].kind == .word ? tokens[i].text.lowercased() : ""
  }

  /// An identifier (word or quoted) at `i`.
  func identifier(_ i: Int) -> String? {
    guard i < tokens.count, tokens[i].kind == .word || tokens[i].kind == .quoted else { return nil }
    return tokens[i].text
  }

  /// The index after the optional words `words` starting at `i`.
  func skip(_ words: Set<String>, from i: Int) -> Int {
    var j = i
    while words.contains(word(j)) { j += 1 }
    return j
  }

  /// The first top-level (outside parentheses) keyword `k` at or after `i`.
  func keyword(_ k: String, from i: Int) -> Int? {
    var j = i
    while j < tokens.count {
      if tokens[j].depth == 0 && word(j) == k { return j }
      j += 1
    }
    return nil
  }

  /// `a.b.c` at `i`: its parts and the index after it.
  func qualifiedName(at i: Int) -> (parts: [String], next: Int)? {
    guard let first = identifier(i) else { return nil }
    var parts = [first]
    var j = i + 1
    while j + 1 < tokens.count && tokens[j].kind == .punct && tokens[j].text == ".", let p = identifier(j + 1)
    {
      parts.append(p)
      j += 2
    }
    return (parts, j)
  }

  /// A relation name at `i`: its schema (an unqualified name takes `defaultSchema`), its name,
  /// "schema.name" (unquoted, as ai-shell names tables) and the index after it.
  func relation(at i: Int, defaultSchema: String?) -> (schema: String, name: String, full: String, next: Int)?
  {
    guard let n = qualifiedName(at: i), n.parts.count <= 2 else { return nil }
    let schema = n.parts.count == 2 ? n.parts[0] : (defaultSchema ?? "public")
    let name = n.parts[n.parts.count - 1]
    return (schema, name, schema + "." + name, n.next)
  }
}
