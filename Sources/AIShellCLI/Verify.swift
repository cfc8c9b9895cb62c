import ArgumentParser
import BackupCore
import BackupModel
import Foundation

extension Backup {
  struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract:
        "Check a backup: the file and manifest (default), every checksum (--deep), a real restore (--test).",
      discussion: "Exits 0 only when every asked check passes (8 when one fails).")

    @Argument(help: "The backup id or a unique prefix of it.")
    var id: String

    @Flag(help: "Decode every member and check the file's and every part's SHA-256.")
    var deep = false

    @Flag(help: "Restore into a scratch database and compare row counts and content checksums.")
    var test = false

    @Flag(help: "Show progress on stderr.")
    var verbose = false

    @OptionGroup var decrypt: DecryptOptions

    @OptionGroup var cloud: CloudOptions

    @OptionGroup var common: CommonOptions

    func run() throws {
      let service = common.service(verbose: verbose)
      service.keys = try decrypt.keys(configured: common.loadConfig().encryption.identityFile)
      let progress = ProgressPrinter()
      if verbose || (cloud.cloud && isTerminal(2)) { service.progress = progress }
      try cloud.apply(to: service, common: common)
      if test, let m = try? service.manifest(for: id),
        let connection = ResolvedDatabase.connection(
          forLocation: m.database.location, config: try common.loadConfig())
      {
        // the manifest keeps no password: a named connection for that server supplies it
        connection.exportPassword()
      }
      let report = try service.verify(id, deep: deep || test, test: test)
      if common.json {
        print(try Render.json(report))
      } else {
        for c in report.checks { print("\(c.ok ? "ok  " : "FAIL")  \(c.name): \(c.detail)") }
        print(report.ok ? "backup \(report.id) verified" : "backup \(report.id) FAILED verification")
      }
      if !report.ok { throw ExitCode(ExitStatus.verifyFailed.rawValue) }
    }
  }
}
