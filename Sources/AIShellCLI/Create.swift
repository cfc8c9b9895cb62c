import ArgumentParser
import BackupCore
import BackupModel
import Foundation

extension Backup {
  struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Back up a database into one standard file plus a manifest.",
      discussion: "Prints the new backup id as the last line of stdout (an object with --json).")

    @Option(
      name: .shortAndLong,
      help:
        "The database: a SQLite file path, sqlite:///abs/path.db, or postgresql://user@host:port/db (password from PGPASSWORD or ~/.pgpass)."
    )
    var database: String

    @Option(name: .shortAndLong, help: "A name for the backup (shown by list).")
    var name: String?

    @Option(name: .shortAndLong, help: "Compression of every member.")
    var compression: CompressionAlgorithm = .zstd

    @Option(help: "Compression level (default: gzip 6, bzip2 9, zstd 3).")
    var level: Int?

    @Option(help: "Content format: sql (a script), json (NDJSON) or csv (a tar of CSV files).")
    var format: DumpFormat = .sql

    @Option(help: "Only these tables (comma-separated exact names).")
    var tables: String?

    @Flag(help: "Re-read the written file and check every checksum before declaring it complete.")
    var verify = false

    @Option(help: "Seconds to wait for a database locked by another writer.")
    var lockTimeout: Double = 10

    @Flag(help: "Show progress and log lines on stderr.")
    var verbose = false

    @OptionGroup var common: CommonOptions

    func validate() throws {
      _ = try parseTableList(tables)
      guard lockTimeout >= 0 else { throw ValidationError("--lock-timeout must be zero or more seconds") }
    }

    func run() throws {
      let service = common.service(verbose: verbose)
      let progress = ProgressPrinter()
      if verbose { service.progress = progress }
      let summary = try service.create(
        .init(
          database: database, name: name, compression: compression, level: level, format: format,
          tables: try parseTableList(tables), verify: verify, lockTimeoutSeconds: lockTimeout))
      if common.json {
        print(try Render.json(summary))
      } else {
        if verbose {
          printStderr(
            "backup \(summary.id): \(summary.tables.count) tables, \(Render.bytes(summary.sizeBytes)) in \(Render.seconds(summary.durationSeconds ?? 0))"
          )
        }
        print(summary.id)
      }
    }
  }
}
