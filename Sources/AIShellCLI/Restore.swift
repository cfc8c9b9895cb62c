import ArgumentParser
import BackupCore
import BackupModel
import Foundation

extension Backup {
  struct Restore: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Restore a backup, whole or table by table.",
      discussion: """
        A checksum mismatch always stops a restore before anything is committed. Existing tables \
        are never replaced unless --drop-existing is given.
        """)

    @Argument(help: "The backup id or a unique prefix of it.")
    var id: String

    @Option(
      name: .shortAndLong,
      help:
        "Target database: connection name, path or URL (default: the backup's source). Created if missing.")
    var database: String?

    @Flag(help: "Check everything and print the plan without writing anything.")
    var dryRun = false

    @Flag(help: "Check the whole file's and every part's checksums before the first write.")
    var verify = false

    @Option(help: "Only these tables: comma-separated names or globs (public.*); reads only their parts.")
    var tables: String?

    @Flag(help: "Drop the backup's objects that already exist in the target before restoring.")
    var dropExisting = false

    @Flag(help: "Go on past failing statements, report how many failed, and exit with code 7.")
    var continueOnError = false

    @Option(
      help: "Seconds to wait for a target locked by another writer (default: config lockTimeoutSeconds, 10).")
    var lockTimeout: Double?

    @Option(
      help:
        "PostgreSQL and MySQL/MariaDB: tables loaded at once on separate connections (default 1: one transaction). SQLite uses one connection."
    )
    var jobs: Int?

    @Flag(help: "Show progress and log lines on stderr.")
    var verbose = false

    @OptionGroup var decrypt: DecryptOptions

    @OptionGroup var cloud: CloudOptions

    @OptionGroup var common: CommonOptions

    func validate() throws {
      _ = try parseTableList(tables)
      try validateJobs(jobs)
      try cloud.validate()
    }

    func run() throws {
      let service = common.service(verbose: verbose)
      service.keys = try decrypt.keys(configured: common.loadConfig().encryption.identityFile)
      let progress = ProgressPrinter()
      if verbose || (cloud.cloud && isTerminal(2)) { service.progress = progress }
      try cloud.apply(to: service, common: common)
      var options = BackupService.RestoreOptions(
        target: try database.map { try common.resolveDatabase($0) }, tables: try parseTableList(tables),
        dryRun: dryRun, verify: verify,
        dropExisting: dropExisting, continueOnError: continueOnError,
        lockTimeoutSeconds: try lockTimeout ?? common.loadConfig().lockTimeoutSeconds)
      if let jobs { options.jobs = jobs }
      let outcome = try service.restore(id, options: options)
      if common.json {
        print(try Render.json(outcome))
      } else if outcome.dryRun {
        print("dry run: would restore \(outcome.id) into \(outcome.target)")
        for t in outcome.tables { print("  table \(t.name): \(t.rows) rows") }
        for n in outcome.notes { print("  \(n)") }
      } else {
        let rows = outcome.tables.reduce(0) { $0 + $1.rows }
        print(
          "restored \(outcome.id) into \(outcome.target): \(outcome.tables.count) tables, \(rows) rows in \(Render.seconds(outcome.durationSeconds))"
        )
        for n in outcome.notes { print("  \(n)") }
      }
      if outcome.statementsFailed > 0 {
        for e in outcome.errors { printStderr("  \(e)") }
        printError("\(outcome.statementsFailed) statements failed (--continue-on-error)")
        throw ExitCode(ExitStatus.partialRestore.rawValue)
      }
    }
  }
}
