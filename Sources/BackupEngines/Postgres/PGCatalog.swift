import BackupModel
import Foundation

/// A user table as the engine sees it: `name` is "schema.table" (unquoted), `sql` the quoted
/// qualified name for statements.
struct PGTable {
  var oid: String
  var schema: String
  var relname: String
  var kind: String  // r (ordinary) or p (partitioned)
  var sql: String
  var name: String { "\(schema).\(relname)" }
}

extension [PGTable] {
  /// The tables' oids as a PostgreSQL array literal, for `= ANY($1::oid[])`.
  var oidArrayLiteral: String { "{" + map(\.oid).joined(separator: ",") + "}" }
}

extension PGConnection {
  /// Session settings that make the text form of every value independent of the server's and the
  /// client's configuration, so content checksums computed here and on a restored copy agree.
  func setStableOutput() throws {
    let enc =
      try query("SHOW server_encoding").first?.first??.replacingOccurrences(of: "'", with: "") ?? "UTF8"
    try query(
      """
      SET client_encoding = '\(enc)'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres';
      SET extra_float_digits = 3; SET TimeZone = 'UTC'; SET bytea_output = 'hex';
      SET statement_timeout = 0; SET idle_in_transaction_session_timeout = 0
      """)
  }

  /// The current database's encoding and locale, as `CREATE DATABASE` takes them (recorded in
  /// the manifest: a restore that creates its target creates it alike, as `pg_restore -C` does).
  func databaseCreation() throws -> Manifest.DatabaseCreation? {
    let provider =
      switch serverVersionNumber {
      case 170000...: "d.datlocprovider::text, d.datlocale"
      case 150000..<170000: "d.datlocprovider::text, d.daticulocale"
      default: "NULL::text, NULL::text"
      }
    guard
      let row = try query(
        """
        SELECT pg_catalog.pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, \(provider)
        FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()
        """
      ).first, let encoding = row[0], let collate = row[1], let ctype = row[2]
    else { return nil }
    let name = row[3].flatMap { ["c": "libc", "i": "icu", "b": "builtin"][$0] }
    return Manifest.DatabaseCreation(
      encoding: encoding, lcCollate: collate, lcCtype: ctype, localeProvider: name,
      providerLocale: name == "libc" ? nil : row[4])
  }

  var serverEncoding: String {
    (try? query("SHOW server_encoding").first?.first ?? nil) ?? "UTF8"
  }

  /// Ordinary and partitioned user tables (not in pg_catalog, information_schema, toast or temp
  /// schemas, not owned by an extension), sorted by schema and name.
  func userTables() throws -> [PGTable] {
    try query(
      """
      SELECT c.oid::text, n.nspname, c.relname, c.relkind::text,
             pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname)
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p')
        AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                        WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
      ORDER BY n.nspname COLLATE "C", c.relname COLLATE "C"
      """
    ).map { PGTable(oid: $0[0]!, schema: $0[1]!, relname: $0[2]!, kind: $0[3]!, sql: $0[4]!) }
  }

  /// The dumped columns of a table, quoted and comma-separated as pg_dump writes them (generated
  /// columns are left out: the server computes them).
  func copyColumns(oid: String) throws -> String {
    let rows = try query(
      """
      SELECT pg_catalog.quote_ident(attname) FROM pg_catalog.pg_attribute
      WHERE attrelid = $1::oid AND attnum > 0 AND NOT attisdropped AND attgenerated = ''
      ORDER BY attnum
      """, [oid])
    return rows.map { $0[0]! }.joined(separator: ", ")
  }

  /// Leaf partitions of a partitioned table (their rows live there).
  func leafPartitions(oid: String) throws -> [String] {
    try query(
      "SELECT relid::oid::text FROM pg_catalog.pg_partition_tree($1::oid::regclass) WHERE isleaf AND level > 0",
      [oid]
    ).map { $0[0]! }
  }

  /// Sequences (not extension-owned) of the given tables' schemas: (qualified literal name,
  /// unquoted name, owning table or nil).
  func sequences() throws -> [(sql: String, name: String, table: String?)] {
    try query(
      """
      SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname),
             n.nspname || '.' || c.relname,
             (SELECT tn.nspname || '.' || t.relname FROM pg_catalog.pg_depend d
                JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
                JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
              WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1)
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'S' AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                        WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
      ORDER BY 2
      """
    ).map { ($0[0]!, $0[1]!, $0[2]) }
  }

  /// Maps pg_dump TOC entries ("Type", schema, tag) to the table they belong to.
  func objectTableMap() throws -> ObjectTableMap {
    var map = ObjectTableMap()
    let rows = try query(
      """
      SELECT 'TABLE', n.nspname, c.relname, n.nspname || '.' || c.relname
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'f')
      UNION ALL
      SELECT 'INDEX', n.nspname, i.relname, n.nspname || '.' || t.relname
        FROM pg_catalog.pg_index x JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
        JOIN pg_catalog.pg_class t ON t.oid = x.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
      UNION ALL
      SELECT 'RELOBJ', n.nspname, t.relname || ' ' || o.name, n.nspname || '.' || t.relname
        FROM (SELECT conrelid AS rel, conname AS name FROM pg_catalog.pg_constraint WHERE conrelid <> 0
              UNION ALL SELECT tgrelid, tgname FROM pg_catalog.pg_trigger WHERE NOT tgisinternal
              UNION ALL SELECT ev_class, rulename FROM pg_catalog.pg_rewrite WHERE rulename <> '_RETURN'
              UNION ALL SELECT polrelid, polname FROM pg_catalog.pg_policy
              UNION ALL SELECT adrelid, a.attname FROM pg_catalog.pg_attrdef d
                JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum) o
        JOIN pg_catalog.pg_class t ON t.oid = o.rel JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
      UNION ALL
      SELECT 'SEQUENCE', n.nspname, c.relname,
             (SELECT tn.nspname || '.' || t.relname FROM pg_catalog.pg_depend d
                JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
                JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
              WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i') LIMIT 1)
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'S'
      """)
    for r in rows {
      guard let kind = r[0], let schema = r[1], let tag = r[2] else { continue }
      map.entries[ObjectTableMap.key(kind, schema, tag)] = r[3] ?? ""
      if kind == "TABLE" { map.tablesBySchema[schema, default: []].append(tag) }
    }
    return map
  }
}

/// Which table each pg_dump TOC entry belongs to, for `--tables` restores.
struct ObjectTableMap {
  var entries: [String: String] = [:]
  var tablesBySchema: [String: [String]] = [:]

  static func key(_ kind: String, _ schema: String, _ tag: String) -> String {
    "\(kind)\u{0}\(schema)\u{0}\(tag)"
  }

  static let relationObjectTypes: Set<String> = [
    "CONSTRAINT", "FK CONSTRAINT", "CHECK CONSTRAINT", "TRIGGER", "RULE", "POLICY", "ROW SECURITY", "DEFAULT",
  ]

  func lookup(_ kind: String, _ schema: String, _ tag: String) -> String? {
    entries[ObjectTableMap.key(kind, schema, tag)].flatMap { $0.isEmpty ? nil : $0 }
  }

  /// The table ("schema.table") a TOC entry belongs to, or nil for schema-wide objects.
  func table(for h: TOCHeader) -> String? {
    guard let schema = h.schema else { return nil }
    switch h.type {
    case "TABLE", "TABLE ATTACH", "FOREIGN TABLE":
      return lookup("TABLE", schema, h.tag)
    case "INDEX", "INDEX ATTACH":
      return lookup("INDEX", schema, h.tag)
    case "SEQUENCE", "SEQUENCE OWNED BY", "SEQUENCE SET":
      return lookup("SEQUENCE", schema, h.tag)
    case _ where ObjectTableMap.relationObjectTypes.contains(h.type):
      return lookup("RELOBJ", schema, h.tag)
    case "COMMENT", "ACL", "SECURITY LABEL":
      for (prefix, kind) in [("TABLE ", "TABLE"), ("INDEX ", "INDEX"), ("SEQUENCE ", "SEQUENCE")]
      where h.tag.hasPrefix(prefix) {
        return lookup(kind, schema, String(h.tag.dropFirst(prefix.count)))
      }
      if h.tag.hasPrefix("COLUMN ") {
        let rest = h.tag.dropFirst("COLUMN ".count)
        let candidates = (tablesBySchema[schema] ?? []).filter { rest.hasPrefix($0 + ".") }
        if let t = candidates.max(by: { $0.count < $1.count }) { return "\(schema).\(t)" }
        return nil
      }
      if let on = h.tag.range(of: " ON ", options: .backwards) {
        let t = String(h.tag[on.upperBound...])
        if (tablesBySchema[schema] ?? []).contains(t) { return "\(schema).\(t)" }
      }
      return nil
    default:
      return nil
    }
  }
}

/// Entry types that are views (or hang on one): skipped by a `--tables` restore.
func isViewEntry(_ o: SchemaObject) -> Bool {
  let t = o.type.uppercased()
  if t == "VIEW" || t == "MATERIALIZED VIEW" || t == "MATERIALIZED VIEW DATA" { return true }
  if ["COMMENT", "ACL", "SECURITY LABEL"].contains(t) {
    let tag = o.name.split(separator: ".", maxSplits: 1).last.map(String.init) ?? o.name
    return o.name.hasPrefix("VIEW ") || o.name.hasPrefix("MATERIALIZED VIEW ") || tag.hasPrefix("VIEW ")
      || tag.hasPrefix("MATERIALIZED VIEW ")
  }
  return false
}
