import BackupModel
import Foundation
import TestSupport
import Testing

@testable import BackupEngines

/// psql-style splitting of pg_dump scripts, whole and streamed, and the object markers added to
/// them without a catalog (the server-backed tests are in PostgresTests).
@Suite struct PGScriptTests {
  static let tricky = #"""
    SET x = 1;
    CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $body$
    BEGIN
      RETURN 'a;b' || $q$ ; $q$; -- ; comment
    END
    $body$;
    SELECT E'it\'s; fine', 'doubled '' ; quote', "weird;ident" FROM t /* a ; /* nested ; */ still ; */;
    -- comment ; line
    \restrict abc
      SELECT $1, x$y;
    SELECT 1; SELECT 2;
    SELECT a--b ;
    ;

    """#

  /// pg_dump's TOC entry headers: the tag runs to the last "; Type: " (a name may hold "; "
  /// and even "; Type: "), the fields after it are split at "; ", "-" is no schema.
  @Test func tocHeaders() {
    func parse(_ line: String) -> [String?]? {
      TOCHeader(Array(line.utf8)[...]).map { [$0.tag, $0.type, $0.schema] }
    }
    #expect(parse("-- Name: a b; Type: TABLE; Schema: public; Owner: o\n") == ["a b", "TABLE", "public"])
    #expect(
      parse("-- Data for Name: t; Type: TABLE DATA; Schema: Odd; Sch; Owner: o") == [
        "t", "TABLE DATA", "Odd",
      ])
    #expect(
      parse("-- Name: x; Type: y; Type: FK CONSTRAINT; Schema: s; Owner: -\r\n") == [
        "x; Type: y", "FK CONSTRAINT", "s",
      ])
    #expect(parse("-- Name: hstore; Type: EXTENSION; Schema: -; Owner: -") == ["hstore", "EXTENSION", nil])
    #expect(parse("-- Name: ünï; Type: VIEW; Schema: ß") == ["ünï", "VIEW", "ß"])
    #expect(parse("-- Name: no type here") == nil)
    #expect(parse("-- Dumped from database version 15") == nil)
    #expect(parse("-- Name: ; Type: ") == ["", "", nil])
  }

  func streamed(_ text: String) throws -> [(PGScriptReader.Kind, String)] {
    let reader = PGScriptReader(InputReader(MemorySource(Array(text.utf8), chunk: 5)))
    var piece: [UInt8] = []
    var out: [(PGScriptReader.Kind, String)] = []
    while let kind = try reader.next(into: &piece) {
      out.append((kind, String(decoding: piece, as: UTF8.self)))
    }
    return out
  }

  @Test func streamedPiecesEqualWholeOnes() throws {
    let b = Array(Self.tricky.utf8)
    let whole = try PGText.pieces(b).map { p -> (PGScriptReader.Kind, String) in
      switch p {
      case .line(let r): return (.line, String(decoding: b[r], as: UTF8.self))
      case .statement(let r): return (.statement, String(decoding: b[r], as: UTF8.self))
      }
    }
    let stream = try streamed(Self.tricky)
    #expect(whole.map(\.1) == stream.map(\.1))
    #expect(whole.map(\.0) == stream.map(\.0))
    #expect(
      stream.filter { $0.0 == .statement }.map(\.1) == [
        "SET x = 1;\n",
        "CREATE FUNCTION f() RETURNS text LANGUAGE plpgsql AS $body$\nBEGIN\n  RETURN 'a;b' || $q$ ; $q$; -- ; comment\nEND\n$body$;\n",
        "SELECT E'it\\'s; fine', 'doubled '' ; quote', \"weird;ident\" FROM t /* a ; /* nested ; */ still ; */;\n",
        "  SELECT $1, x$y;\n", "SELECT 1; SELECT 2;\n", "SELECT a--b ;\n;\n",
      ])
    #expect(throws: BackupError.self) { try streamed("SELECT 'never closed;\n") }
  }

  static let dump = #"""
    --
    -- Name: a b; Type: TABLE; Schema: public; Owner: o
    --

    CREATE TABLE public."a b" (x integer);


    ALTER TABLE public."a b" OWNER TO o;

    --
    -- Name: a b_x_seq; Type: SEQUENCE; Schema: public; Owner: o
    --

    CREATE SEQUENCE public."a b_x_seq"
        AS integer;


    ALTER TABLE public."a b_x_seq" OWNER TO o;

    --
    -- Name: a b_x_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: o
    --

    ALTER SEQUENCE public."a b_x_seq" OWNED BY public."a b".x;

    --
    -- Name: lonely; Type: SEQUENCE; Schema: public; Owner: o
    --

    CREATE SEQUENCE public.lonely;

    --
    -- Name: a b pk ab; Type: CONSTRAINT; Schema: public; Owner: o
    --

    ALTER TABLE ONLY public."a b"
        ADD CONSTRAINT "pk ab" PRIMARY KEY (x);

    --
    -- Name: b; Type: INDEX; Schema: public; Owner: o
    --

    CREATE INDEX b ON public."a b" USING btree (x);

    --
    -- Name: INDEX b; Type: COMMENT; Schema: public; Owner: o
    --

    COMMENT ON INDEX public.b IS 'a comment; with ON public.z';

    --
    -- Name: a b t; Type: TRIGGER; Schema: public; Owner: o
    --

    CREATE TRIGGER t BEFORE UPDATE OF x ON public."a b" FOR EACH ROW EXECUTE FUNCTION public.f();

    --
    -- Name: SEQUENCE a b_x_seq; Type: ACL; Schema: public; Owner: o
    --

    GRANT ALL ON SEQUENCE public."a b_x_seq" TO PUBLIC;

    """#

  /// Markers from the statements: quoted names with spaces, the serial sequence placed by the
  /// OWNED BY entry after it, an index comment placed by the index; the same whether the script
  /// is annotated whole or piece by piece.
  @Test func markersFromStatements() throws {
    var whole = PGAnnotator(PGScriptResolver())
    let annotated = String(decoding: whole.annotate(Array(Self.dump.utf8)), as: UTF8.self)
    let tables = Dictionary(whole.objects.map { ("\($0.type) \($0.name)", $0.table ?? "-") }) { a, _ in a }
    #expect(
      tables == [
        "table public.a b": "public.a b", "sequence public.a b_x_seq": "public.a b",
        "sequence owned by public.a b_x_seq": "public.a b", "sequence public.lonely": "-",
        "constraint public.a b pk ab": "public.a b", "index public.b": "public.a b",
        "comment public.INDEX b": "public.a b", "trigger public.a b t": "public.a b",
        "acl public.SEQUENCE a b_x_seq": "public.a b",
      ])
    // each marker directly follows its header, in order, and nothing else changed
    #expect(
      annotated.replacingOccurrences(of: #"-- ai-shell: \{[^\n]*\}\n"#, with: "", options: .regularExpression)
        == Self.dump)
    #expect(
      annotated.contains(
        "-- Name: a b_x_seq; Type: SEQUENCE; Schema: public; Owner: o\n-- ai-shell: {\"type\":\"sequence\",\"name\":\"public.a b_x_seq\",\"table\":\"public.a b\"}\n"
      ))
    var stream = PGAnnotator(PGScriptResolver())
    var out: [UInt8] = []
    for (kind, text) in try streamed(Self.dump) {
      kind == .line
        ? stream.line(Array(text.utf8)[...], to: &out) : stream.statement(Array(text.utf8)[...], to: &out)
    }
    stream.finish(to: &out)
    #expect(String(decoding: out, as: UTF8.self) == annotated)
    #expect(stream.objects == whole.objects)
  }
}
