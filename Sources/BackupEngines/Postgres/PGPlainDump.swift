import BackupModel
import Foundation

/// Turns a plain-format `pg_dump` script into the parts of an sql backup, in one streaming pass
/// (docs/FORMAT.md, "Exported copies and imported dumps"): everything before the first
/// `COPY … FROM stdin;` is the schema part, each COPY block a table part (its rows counted),
/// and the rest (sequence values, indexes, constraints, triggers …, kept in memory: it is
/// schema-sized) the post-data part.
public enum PGPlainDump {
  public struct Result: Sendable {
    public var serverVersion: String
    public var objects: [SchemaObject]
  }

  /// True for a pg_dump plain script (not the custom format, which starts with PGDMP).
  public static func looksLikeDump(_ head: [UInt8]) -> Bool {
    !head.starts(with: Array("PGDMP".utf8))
      && String(decoding: head, as: UTF8.self).contains("-- PostgreSQL database dump")
  }

  public static func convert(_ source: ByteSource, to sink: PartSink) throws -> Result {
    let reader = InputReader(source)
    let out = OutputBuffer(sink: sink)
    var line: [UInt8] = []
    var post: [UInt8] = []
    var version = "unknown (pg_dump)"
    var objects: [SchemaObject] = []
    var seen: Set<String> = []
    var inData = false
    var complete = false
    try sink.beginPart(kind: .schema, table: nil)
    while try reader.readLine(into: &line) {
      if !inData, line.starts(with: Array("-- Dumped from database version ".utf8)) {
        version = String(decoding: line.dropFirst(32), as: UTF8.self).trimmingCharacters(
          in: .whitespacesAndNewlines)
      }
      guard let table = copyTarget(line) else {
        if line.starts(with: Array("-- PostgreSQL database dump complete".utf8)) { complete = true }
        if inData { post += line } else { out.append(contentsOf: line) }
        try out.flushIfNeeded()
        continue
      }
      guard seen.insert(table).inserted else {
        throw BackupError(.usage, "table \"\(table)\" has two COPY blocks in the dump")
      }
      if !inData {
        try out.flush()
        try sink.endPart(rows: nil, contentChecksum: nil)
        inData = true
      }
      objects.append(SchemaObject(type: "table", name: table, table: table))
      try sink.beginPart(kind: .table, table: table)
      let marker = SchemaObject(type: "data", name: table, table: table)
      out.append(Bytes.markerPrefix + Bytes.markerJSON(marker) + "\n")
      out.append(contentsOf: line)
      var rows: Int64 = 0
      var ended = false
      while try reader.readLine(into: &line) {
        out.append(contentsOf: line)
        if line == [0x5C, 0x2E, 0x0A] || line == [0x5C, 0x2E] {
          ended = true
          break
        }
        rows += 1
        try out.flushIfNeeded()
      }
      guard ended else {
        throw BackupError(
          .corrupt, "the COPY data of \(table) ends without \\.", hint: "the dump is truncated")
      }
      out.append("\n")
      try out.flush()
      // no content checksum: pg_dump's session settings (time zone …) are not ours
      try sink.endPart(rows: rows, contentChecksum: nil)
    }
    if !inData {
      try out.flush()
      try sink.endPart(rows: nil, contentChecksum: nil)
    }
    guard complete else {
      throw BackupError(
        .corrupt,
        "the pg_dump script is incomplete: it does not end with \"-- PostgreSQL database dump complete\"",
        hint: "the dump was cut short; make it again")
    }
    try sink.beginPart(kind: .postData, table: nil)
    out.append(contentsOf: post)
    try out.flush()
    try sink.endPart(rows: nil, contentChecksum: nil)
    return Result(serverVersion: version, objects: objects)
  }

  /// "schema.table" of a `COPY schema.table (…) FROM stdin;` line, or nil.
  static func copyTarget(_ line: [UInt8]) -> String? {
    guard line.starts(with: Array("COPY ".utf8)) else { return nil }
    let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard text.hasSuffix(" FROM stdin;") else { return nil }
    var rest = Substring(text.dropFirst(5))
    func ident() -> String? {
      if rest.first == "\"" {
        var name = ""
        var i = rest.index(after: rest.startIndex)
        while i < rest.endIndex {
          if rest[i] == "\"" {
            let next = rest.index(after: i)
            if next < rest.endIndex && rest[next] == "\"" {
              name.append("\"")
              i = rest.index(after: next)
              continue
            }
            rest = rest[next...]
            return name
          }
          name.append(rest[i])
          i = rest.index(after: i)
        }
        return nil
      }
      let name = rest.prefix { $0 != "." && $0 != " " }
      rest = rest.dropFirst(name.count)
      return name.isEmpty ? nil : String(name)
    }
    guard let schema = ident(), rest.first == "." else { return nil }
    rest = rest.dropFirst()
    guard let table = ident() else { return nil }
    return "\(schema).\(table)"
  }
}
