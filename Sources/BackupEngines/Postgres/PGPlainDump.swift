import BackupModel
import Foundation

/// Turns a plain-format `pg_dump` script into the parts of an sql backup, in one streaming pass
/// (docs/FORMAT.md, "Exported copies and imported dumps"): everything before the first
/// `COPY … FROM stdin;` is the schema part, each COPY block a table part (its rows counted),
/// and the rest (sequence values, indexes, constraints, triggers …, kept in memory: it is
/// schema-sized) the post-data part. The script is split into statements as psql splits it
/// (PGScriptReader) and gets the object markers our own dumps carry (PGAnnotator with
/// PGScriptResolver), so `restore --tables` restores single tables of it.
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
    let script = PGScriptReader(reader)
    let out = OutputBuffer(sink: sink)
    var annotator = PGAnnotator(PGScriptResolver())
    var piece: [UInt8] = []
    var line: [UInt8] = []
    var post: [UInt8] = []
    var version = "unknown (pg_dump)"
    var seen: Set<String> = []
    var copied: [String] = []
    var inData = false
    var complete = false
    try sink.beginPart(kind: .schema, table: nil)
    while let kind = try script.next(into: &piece) {
      if kind == .line {
        if !inData, piece.starts(with: Array("-- Dumped from database version ".utf8)) {
          version = String(decoding: piece.dropFirst(32), as: UTF8.self).trimmingCharacters(
            in: .whitespacesAndNewlines)
        }
        if piece.starts(with: Array("-- PostgreSQL database dump complete".utf8)) { complete = true }
      }
      guard kind == .statement, let table = copyTarget(piece) else {
        if inData {
          kind == .line ? annotator.line(piece[...], to: &post) : annotator.statement(piece[...], to: &post)
        } else {
          kind == .line
            ? annotator.line(piece[...], to: &out.bytes) : annotator.statement(piece[...], to: &out.bytes)
          try out.flushIfNeeded()
        }
        continue
      }
      guard seen.insert(table).inserted else {
        throw BackupError(.usage, "table \"\(table)\" has two COPY blocks in the dump")
      }
      if inData {
        annotator.finish(to: &post)
      } else {
        annotator.finish(to: &out.bytes)
        try out.flush()
        try sink.endPart(rows: nil, contentChecksum: nil)
        inData = true
      }
      copied.append(table)
      try sink.beginPart(kind: .table, table: table)
      let marker = SchemaObject(type: "data", name: table, table: table)
      out.append(Bytes.markerPrefix + Bytes.markerJSON(marker) + "\n")
      out.append(contentsOf: piece)
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
      annotator.finish(to: &out.bytes)
      try out.flush()
      try sink.endPart(rows: nil, contentChecksum: nil)
    }
    guard complete else {
      throw BackupError(
        .corrupt,
        "the pg_dump script is incomplete: it does not end with \"-- PostgreSQL database dump complete\"",
        hint: "the dump was cut short; make it again")
    }
    annotator.finish(to: &post)
    try sink.beginPart(kind: .postData, table: nil)
    out.append(contentsOf: post)
    try out.flush()
    try sink.endPart(rows: nil, contentChecksum: nil)
    // the data headers' markers stay in the script; the table objects already name the tables,
    // and every table the script fills is listed, even if its CREATE TABLE had no TOC header
    var objects = annotator.objects.filter { $0.type != "table data" }
    let listed = Set(objects.filter { $0.type == "table" }.map(\.name))
    for t in copied where !listed.contains(t) {
      objects.append(SchemaObject(type: "table", name: t, table: t))
    }
    return Result(serverVersion: version, objects: objects)
  }

  /// "schema.table" of a `COPY schema.table (…) FROM stdin;` line, or nil.
  static func copyTarget(_ line: [UInt8]) -> String? {
    guard line.starts(with: Array("COPY ".utf8)) else { return nil }
    let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    guard text.hasSuffix(" FROM stdin;") else { return nil }
    // pg_dump always qualifies the table and quotes what needs quoting (SQLTokens unquotes)
    guard let name = SQLTokens(line[...], limit: 4).qualifiedName(at: 1), name.parts.count == 2 else {
      return nil
    }
    return name.parts.joined(separator: ".")
  }
}

/// Splits a psql script read from a stream into the pieces PGText.pieces makes of a whole one
/// (comment, blank and meta-command lines; statements up to the end of the line holding their
/// `;`), holding only the current statement in memory. COPY data is not lexed: the caller reads
/// it from the same InputReader after a `COPY … FROM stdin;` statement.
final class PGScriptReader {
  enum Kind { case line, statement }
  private let reader: InputReader
  private var line: [UInt8] = []

  init(_ reader: InputReader) { self.reader = reader }

  /// The next piece into `piece`, or nil at the end of the script.
  func next(into piece: inout [UInt8]) throws -> Kind? {
    guard try reader.readLine(into: &piece) else { return nil }
    var first = 0
    while first < piece.count && (piece[first] == 0x20 || piece[first] == 0x09) { first += 1 }
    if PGText.isBlank(piece[first...]) || piece[first...].starts(with: [0x2D, 0x2D]) || piece[first] == 0x5C {
      return .line
    }
    var scanner = PGText.StatementScanner()
    var from = first
    while piece.withUnsafeBufferPointer({ scanner.scan($0, from: from, to: $0.count) }) == nil {
      guard try reader.readLine(into: &line) else {
        throw BackupError(
          .corrupt, "the pg_dump script ends inside an SQL statement",
          hint: "the dump was cut short; make it again")
      }
      from = piece.count
      piece += line
    }
    return .statement
  }
}
