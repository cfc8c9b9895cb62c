import BackupModel
import CPGCopyBinary
import Testing

@testable import BackupEngines

/// COPY text rows to COPY binary rows (CPGCopyBinary, PGBinaryCopy): exact conversions of the
/// server's own output, and a stop at the first line in any other form (the server-backed tests
/// are in PostgresTests).
@Suite struct PGBinaryCopyTests {
  static let bool = UInt8(AI_SHELL_PG_BOOL)
  static let int2 = UInt8(AI_SHELL_PG_INT2)
  static let int4 = UInt8(AI_SHELL_PG_INT4)
  static let int8 = UInt8(AI_SHELL_PG_INT8)
  static let text = UInt8(AI_SHELL_PG_TEXT)
  static let bpchar = UInt8(AI_SHELL_PG_BPCHAR)

  /// Converts `text`; returns the bytes converted and the tuples.
  func convert(_ text: String, _ kinds: [UInt8]) -> (Int, [UInt8]) {
    let copy = PGBinaryCopy(statement: "", kinds: kinds)
    var out: [UInt8] = []
    let used = Array(text.utf8).withUnsafeBytes { copy.convert($0) { out += $0 } }
    return (used, out)
  }

  func be(_ v: UInt64, _ bytes: Int) -> [UInt8] {
    (0..<bytes).reversed().map { UInt8(truncatingIfNeeded: v >> ($0 * 8)) }
  }
  func field(_ payload: [UInt8]) -> [UInt8] { be(UInt64(payload.count), 4) + payload }
  let null: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF]

  @Test func integersAtTheirLimits() {
    let kinds = [Self.int2, Self.int4, Self.int8]
    let rows =
      "-32768\t-2147483648\t-9223372036854775808\n32767\t2147483647\t9223372036854775807\n0\t-0\t007\n"
    let (used, out) = convert(rows, kinds)
    #expect(used == rows.utf8.count)
    var want: [UInt8] =
      [0, 3] + field([0x80, 0]) + field([0x80, 0, 0, 0]) + field([0x80] + Array(repeating: 0, count: 7))
    want +=
      [0, 3] + field([0x7F, 0xFF]) + field([0x7F, 0xFF, 0xFF, 0xFF])
      + field([0x7F] + Array(repeating: 0xFF, count: 7))
    want += [0, 3] + field([0, 0]) + field([0, 0, 0, 0]) + field(be(7, 8))
    #expect(out == want)
    // one past each limit, or any other form the server's own output never has: stop there
    for bad in [
      "32768\t0\t0", "-32769\t0\t0", "0\t2147483648\t0", "0\t0\t9223372036854775808",
      "0\t0\t-9223372036854775809",
      "+1\t0\t0", " 1\t0\t0", "1 \t0\t0", "\t0\t0", "-\t0\t0", "1e3\t0\t0", "0\t0\t99999999999999999999",
    ] {
      let (used, out) = convert("1\t2\t3\n\(bad)\n4\t5\t6\n", kinds)
      #expect(used == 6, "\(bad)")
      #expect(out == [0, 3] + field([0, 1]) + field(be(2, 4)) + field(be(3, 8)), "\(bad)")
    }
  }

  @Test func textBooleansAndNull() {
    let kinds = [Self.bool, Self.text, Self.text]
    let rows = "t\tback\\\\slash \\t\\n\\r\\b\\f\\v end\tünï 😀\nf\t\\N\t\n\\N\t\\\\N\t  \n"
    let (used, out) = convert(rows, kinds)
    #expect(used == rows.utf8.count)
    var want: [UInt8] = [0, 3] + field([1]) + field(Array("back\\slash \t\n\r\u{8}\u{c}\u{b} end".utf8))
    want += field(Array("ünï 😀".utf8))
    want += [0, 3] + field([0]) + null + field([])
    want += [0, 3] + null + field(Array("\\N".utf8)) + field(Array("  ".utf8))
    #expect(out == want)
  }

  /// char(n) values go without their trailing spaces (the server pads them back to n); leading
  /// and inner spaces, escaped characters and every other column are kept as they are.
  @Test func charValuesLoseOnlyTheirTrailingSpaces() {
    let kinds = [Self.bpchar, Self.text, Self.bpchar]
    let pad84 = String(repeating: " ", count: 84)
    let rows =
      "\(pad84)\t\(pad84)\t\n a b  \tx  \t\\t  \n"
      + "ünï 😀\(String(repeating: " ", count: 17))\t\\N\tabcdefghijklmnop\n\\N\t \t\\\\        \n"
    let (used, out) = convert(rows, kinds)
    #expect(used == rows.utf8.count)
    var want: [UInt8] = [0, 3] + field([]) + field(Array(pad84.utf8)) + field([])
    want += [0, 3] + field(Array(" a b".utf8)) + field(Array("x  ".utf8)) + field([0x09])
    want += [0, 3] + field(Array("ünï 😀".utf8)) + null + field(Array("abcdefghijklmnop".utf8))
    want += [0, 3] + null + field([0x20]) + field([0x5C])
    #expect(out == want)
    #expect(PGBinaryCopy.kind(typeOID: 1042, typmod: 88) == Self.bpchar)  // char(84)
    #expect(PGBinaryCopy.kind(typeOID: 1042, typmod: -1) == Self.text, "bpchar without a length keeps them")
    #expect(PGBinaryCopy.kind(typeOID: 1043, typmod: 10) == Self.text, "varchar keeps them")
  }

  @Test func linesItDoesNotConvertStopIt() {
    let kinds = [Self.int4, Self.text]
    let good = "1\tx\n"
    for bad in [
      "2\t\\101",  // octal escape
      "2\t\\x41",  // hex escape
      "2\t\\.",  // any other escaped character
      "2\ta\\",  // a backslash before the end of the line
      "2\ta\\\tb",  // an escaped tab
      "2\ta\rb",  // a raw carriage return
      "2\tthirty-two bytes before it, then\r",  // ... past the first 16 bytes of the field
      "2\r\tx",  // ... in an integer
      "2\tthirty-two bytes before it, then \\101",  // an escape past the first 16 bytes
      "\\Nx\tx",  // not NULL, not an integer
      "2\tx\ty",  // a field too many
      "2",  // one too few
      "true\tx",
    ] {
      let (used, out) = convert(good + bad + "\n" + good, kinds)
      #expect(used == 4, "\(bad)")
      #expect(out == [0, 2] + field(be(1, 4)) + field([0x78]), "\(bad)")
    }
    let long =
      "3\t\(String(repeating: "0123456789abcdef", count: 3))\\\\\\t\(String(repeating: "z", count: 20))\\n\n"
    #expect(
      convert(long, kinds).1 == [0, 2] + field(be(3, 4))
        + field(
          Array(
            "\(String(repeating: "0123456789abcdef", count: 3))\\\t\(String(repeating: "z", count: 20))\n"
              .utf8)))
    #expect(convert("t\tx\n", [Self.bool, Self.text]).0 == 4)
    #expect(convert("yes\tx\n", [Self.bool, Self.text]).0 == 0)
    #expect(convert("1\tx", kinds).0 == 0, "a last line without its newline")
    #expect(convert("", kinds).0 == 0)
  }

  /// Lines longer than the buffer grow it; many lines fill it several times over.
  @Test func longLinesAndManyLines() {
    let long = String(repeating: "ab", count: 1_500_000)
    let (used, out) = convert("1\t\(long)\n2\tz\n", [Self.int4, Self.text])
    #expect(used == 3_000_000 + 7)
    #expect(
      out == [0, 2] + field(be(1, 4)) + field(Array(long.utf8)) + [0, 2] + field(be(2, 4)) + field([0x7A]))
    let many = (0..<100_000).map { "\($0)\trow \($0)\n" }.joined()
    let (usedMany, outMany) = convert(many, [Self.int8, Self.text])
    #expect(usedMany == many.utf8.count)
    #expect(outMany.count == (0..<100_000).reduce(0) { $0 + 2 + 12 + 4 + "row \($1)".utf8.count })
    // rows that grow five-fold fill the buffer many times over: it is handed on and reused
    let tiny = String(repeating: "1\t-1\n", count: 300_000)
    let (usedTiny, outTiny) = convert(tiny, [Self.int8, Self.int8])
    #expect(usedTiny == tiny.utf8.count)
    let row: [UInt8] = [0, 2] + field(be(1, 8)) + field(be(UInt64.max, 8))
    #expect(outTiny == Array((0..<300_000).map { _ in row }.joined()))
  }

  @Test func copyLines() {
    func parse(_ s: String) -> [String]? {
      guard let p = PGBinaryCopy.parse(copyLine: Array(s.utf8)) else { return nil }
      return [p.target, p.columnList] + p.columns
    }
    #expect(
      parse("COPY public.pgbench_accounts (aid, bid, abalance, filler) FROM stdin;\n")
        == ["public.pgbench_accounts", "aid, bid, abalance, filler", "aid", "bid", "abalance", "filler"])
    #expect(
      parse(#"COPY "Sales Dept"."Order Items" ("Item ID", qty, "Mixed ""Case""") FROM stdin;"#)
        == [
          #""Sales Dept"."Order Items""#, #""Item ID", qty, "Mixed ""Case""""#, "Item ID", "qty",
          #"Mixed "Case""#,
        ])
    #expect(parse("COPY Public.T (A, b_2$) FROM stdin;") == ["Public.T", "A, b_2$", "a", "b_2$"])
    for bad in [
      "COPY t FROM stdin;", "COPY t () FROM stdin;", "COPY t (a FROM stdin;", "COPY t (a) FROM stdin",
      "COPY t (a) FROM 'file';", "COPY t (1a) FROM stdin;", "COPY t (ünï) FROM stdin;",
      #"COPY t ("") FROM stdin;"#,
      #"COPY t ("open) FROM stdin;"#, "SELECT 1;", "COPY t (a) TO stdout;", "COPY db.s.t (a) FROM stdin;",
      "COPY s. (a) FROM stdin;",
    ] {
      #expect(parse(bad) == nil, "\(bad)")
    }
  }
}
