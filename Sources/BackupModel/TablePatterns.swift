#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// `--tables` values: exact names, or shell-style globs (`*`, `?`, `[...]`, as fnmatch(3) without
/// flags, so `*` also matches dots: `public.*`, `sales.order_*`). Every exact name must exist and
/// every glob must match at least one table (like pg_dump's `--strict-names`), so a typo never
/// yields a silently smaller backup or restore.
public enum TablePatterns {
  /// True when `pattern` has a glob character and is matched rather than looked up.
  public static func isGlob(_ pattern: String) -> Bool {
    pattern.contains { $0 == "*" || $0 == "?" || $0 == "[" }
  }

  public static func matches(_ pattern: String, _ name: String) -> Bool {
    isGlob(pattern) ? fnmatch(pattern, name, 0) == 0 : pattern == name
  }

  /// The names in `available` that `patterns` select, in `available`'s order. Throws `.notFound`
  /// naming every exact name that is missing and every glob that matches nothing; `place` says
  /// where they were looked for ("in app.db", "in backup X"). With `defaultSchema` (PostgreSQL:
  /// "public"), a pattern without a dot means that schema's tables, as in psql.
  public static func resolve(
    _ patterns: [String], among available: [String], place: String, defaultSchema: String? = nil
  ) throws -> [String] {
    let qualified = patterns.map { p in defaultSchema.map { p.contains(".") ? p : "\($0).\(p)" } ?? p }
    let unmatched = zip(patterns, qualified).filter { _, q in !available.contains { matches(q, $0) } }.map(
      \.0)
    if !unmatched.isEmpty {
      let described = unmatched.map { isGlob($0) ? "no table matches \"\($0)\"" : "no table \"\($0)\"" }
      let more = available.count > 10 ? ", ... (\(available.count) in all)" : ""
      throw BackupError(
        .notFound, "\(described.joined(separator: ", ")) \(place)",
        hint: available.isEmpty
          ? "there are no tables" : "available: \(available.prefix(10).joined(separator: ", "))\(more)")
    }
    return available.filter { name in qualified.contains { matches($0, name) } }
  }
}
