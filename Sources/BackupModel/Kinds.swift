/// How each member of a backup file is compressed.
public enum CompressionAlgorithm: String, Codable, CaseIterable, Sendable {
  case gzip, bzip2, zstd, none

  /// The file-name suffix the standard tools expect (empty for `none`).
  public var fileExtension: String {
    switch self {
    case .gzip: return ".gz"
    case .bzip2: return ".bz2"
    case .zstd: return ".zst"
    case .none: return ""
    }
  }

  /// The level used when none is asked for: the standard tools' own defaults.
  public var defaultLevel: Int {
    switch self {
    case .gzip: return 6
    case .bzip2: return 9
    case .zstd: return 3
    case .none: return 0
    }
  }
}

/// The logical content format of a backup file.
public enum DumpFormat: String, Codable, CaseIterable, Sendable {
  case sql, json, csv

  /// The file-name suffix before the compression suffix.
  public var fileExtension: String {
    switch self {
    case .sql: return ".sql"
    case .json: return ".ndjson"
    case .csv: return ".tar"
    }
  }
}

/// The database engines the tool knows.
public enum EngineKind: String, Codable, CaseIterable, Sendable {
  case sqlite
  case postgres
  /// MySQL and MariaDB (one engine: `mysql://` and `mariadb://` URLs).
  case mysql

  /// The schema a bare `--tables` name means (PostgreSQL names tables "schema.table").
  public var defaultSchema: String? { self == .postgres ? "public" : nil }
}

/// The role of a part inside a backup file.
public enum PartKind: String, Codable, Sendable {
  /// Everything needed before data: the preamble and table definitions.
  case schema
  /// The rows of one table.
  case table
  /// Everything made after data: indexes, views, triggers, the closing statements.
  case postData = "post-data"
}
