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
        "The database: a connection name, a SQLite file path, sqlite:///abs/path.db, postgresql://user@host:port/db (password from PGPASSWORD or ~/.pgpass), or mysql://user@host:port/db (also mariadb://; password from MYSQL_PWD or ~/.my.cnf)."
    )
    var database: String

    @Option(name: .shortAndLong, help: "A name for the backup (shown by list).")
    var name: String?

    @Option(name: .shortAndLong, help: "Compression of every member (default: the config's, else zstd).")
    var compression: CompressionAlgorithm?

    @Option(help: "Compression level (default: gzip 6, bzip2 9, zstd 3).")
    var level: Int?

    @Option(
      help:
        "Content format: sql (a script), json (NDJSON) or csv (a tar of CSV files); default: the config's, else sql."
    )
    var format: DumpFormat?

    @Option(help: "Only these tables: comma-separated names or globs (public.*, sales.order_*).")
    var tables: String?

    @Flag(help: "Re-read the written file and check every checksum before declaring it complete.")
    var verify = false

    @Option(help: "Seconds to wait for a database locked by another writer (default: the config's, else 10).")
    var lockTimeout: Double?

    @Option(
      help:
        "PostgreSQL and MySQL/MariaDB: tables dumped at once (default: the number of cores, at most 4). SQLite uses one connection."
    )
    var jobs: Int?

    @Flag(help: "Show progress and log lines on stderr.")
    var verbose = false

    @OptionGroup var encryption: EncryptOptions

    @OptionGroup var cloud: CloudOptions

    @Option(
      help: ArgumentHelp(
        "Parts uploaded at once with --cloud (default: cloudConfig.parallel, else 5).", valueName: "n"))
    var parallel: Int?

    @OptionGroup var common: CommonOptions

    func validate() throws {
      _ = try parseTableList(tables)
      try validateJobs(jobs)
      guard (lockTimeout ?? 0) >= 0 else {
        throw ValidationError("--lock-timeout must be zero or more seconds")
      }
      try encryption.validate()
      try cloud.validate()
      if let parallel {
        guard cloud.cloud else { throw ValidationError("--parallel needs --cloud") }
        guard (1...64).contains(parallel) else { throw ValidationError("--parallel must be from 1 to 64") }
      }
    }

    func run() throws {
      let service = common.service(verbose: verbose)
      let progress = ProgressPrinter()
      if verbose || (cloud.cloud && isTerminal(2)) { service.progress = progress }
      try cloud.apply(to: service, common: common, parallel: parallel)
      let encryption = try self.encryption.request(config: common.loadConfig())
      // a passphrase backup can be checked by --verify with the same passphrase
      service.keys = DecryptionKeys(passphrase: encryption?.passphrase)
      // config-file defaults (ConfigSupport.swift)
      let d = try common.createDefaults(
        compression: compression, level: level, format: format, lockTimeout: lockTimeout)
      var options = BackupService.CreateOptions(
        database: try common.resolveDatabase(database), name: name, compression: d.compression,
        level: d.level, format: d.format, tables: try parseTableList(tables), verify: verify,
        lockTimeoutSeconds: d.lockTimeoutSeconds, encryption: encryption)
      if let jobs { options.jobs = jobs }
      let summary = try service.create(options)
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
