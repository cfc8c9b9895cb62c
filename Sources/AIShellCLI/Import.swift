import ArgumentParser
import BackupCore
import BackupModel
import Foundation

extension Backup {
  struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Bring a backup into the backup directory: an exported one, or a plain sqlite3 .dump.",
      discussion: """
        An exported backup (its manifest beside it, or the manifest's path) is checked (size and \
        SHA-256) and copied under its id. A plain dump (sqlite3 db .dump, optionally gzip, bzip2 \
        or zstd-compressed) becomes a new backup. Prints the id as the last line of stdout. \
        pg_dump and mariadb-dump files are recognised but need engines this version lacks (exit \
        64); a file that is not a backup exits 64, a damaged one 4.
        """)

    @Argument(
      help:
        "An exported backup file, its manifest, or a plain dump; with --cloud a backup id, id prefix or object key in the cloud store."
    )
    var source: String

    @Flag(
      help:
        "After importing, check every checksum and do a test restore (exit 8 and nothing kept if it fails).")
    var verify = false

    @Option(
      name: .shortAndLong,
      help: "The database the backup belongs to (connection name, URL or path); restore's default target.")
    var database: String?

    @Option(help: "Compression of a backup built from a dump (default zstd).")
    var compress: CompressionAlgorithm?

    @Option(name: .shortAndLong, help: "A name for a backup built from a dump.")
    var name: String?

    @Flag(help: "Replace a backup with the same id.")
    var force = false

    @OptionGroup var decrypt: DecryptOptions

    @OptionGroup var cloud: CloudOptions

    @OptionGroup var common: CommonOptions

    func validate() throws {
      try cloud.validate()
      if cloud.cloud && (database != nil || compress != nil || name != nil || verify) {
        throw ValidationError("import --cloud takes only a backup id or key (and --force)")
      }
    }

    func run() throws {
      let service = common.service()
      service.keys = try decrypt.keys(configured: common.loadConfig().encryption.identityFile)
      if cloud.cloud {
        try cloud.apply(to: service, common: common)
        let progress = ProgressPrinter()
        if isTerminal(2) { service.progress = progress }
        let summary = try service.importFromCloud(source, force: force)
        if common.json {
          print(try Render.json(summary))
        } else {
          printStderr("imported \(summary.id) from \(summary.cloudFile ?? service.cloud!.location)")
          print(summary.id)
        }
        return
      }
      let outcome = try service.importBackup(
        .init(
          source: source, verify: verify, database: try database.map { try common.resolveDatabase($0) },
          force: force, compression: compress, name: name))
      if common.json {
        print(try Render.json(outcome))
      } else {
        let rows = outcome.backup.tables.reduce(0) { $0 + $1.rows }
        printStderr(
          "imported \(outcome.sourceKind == "ai-shell" ? "backup" : outcome.sourceKind == "pg_dump" ? "pg_dump file" : "sqlite3 dump") \(outcome.source): \(outcome.backup.tables.count) tables, \(rows) rows\(outcome.verification != nil ? ", verified" : "")"
        )
        print(outcome.backup.id)
      }
    }
  }
}
