import ArgumentParser
import BackupCore
import BackupModel
import Foundation

extension Backup {
  struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Show a backup's metadata, tables and sizes; with --verify, check its integrity.")

    @Argument(help: "The backup id or a unique prefix of it.")
    var id: String

    @Flag(help: "Also check the file's and every part's SHA-256 (as verify --deep).")
    var verify = false

    @OptionGroup var decrypt: DecryptOptions

    @OptionGroup var cloud: CloudOptions

    @OptionGroup var common: CommonOptions

    struct Output: Encodable {
      var backup: BackupSummary
      var compressionRatio: Double?
      var integrity: VerifyReport?
    }

    func run() throws {
      let service = common.service()
      service.keys = try decrypt.keys(configured: common.loadConfig().encryption.identityFile)
      try cloud.apply(to: service, common: common)
      let summary = try service.status(id)
      let integrity = verify ? try service.verify(summary.id, deep: true, test: false) : nil
      if common.json {
        print(
          try Render.json(
            Output(backup: summary, compressionRatio: summary.compressionRatio, integrity: integrity)))
      } else {
        var lines: [(String, String)] = [
          ("Backup", summary.id),
          ("Name", summary.name ?? "-"),
          ("Status", summary.status.rawValue),
          (
            "Created",
            "\(Render.date(summary.createdAt)) (took \(Render.seconds(summary.durationSeconds ?? 0)))"
          ),
          ("Database", "\(summary.database ?? "-") (\(summary.engine?.rawValue ?? "-"))"),
          (
            "Format",
            "\(summary.format?.rawValue ?? "-"), \(summary.compression?.rawValue ?? "-") level \(summary.compressionLevel ?? 0)"
          ),
          ("File", summary.file ?? "-"),
          ("Size", "\(Render.bytes(summary.sizeBytes)) stored, \(Render.bytes(summary.rawSizeBytes)) raw"),
          ("Ratio", summary.compressionRatio.map { String(format: "%.2fx", $0) } ?? "-"),
          ("SHA-256", summary.sha256 ?? "-"),
          (
            "Encryption",
            summary.recipients.map { "age, readable by \($0.joined(separator: ", "))" } ?? "none"
          ),
        ]
        if let integrity {
          lines.append(
            (
              "Integrity",
              integrity.ok
                ? "ok" : "FAILED: " + integrity.checks.filter { !$0.ok }.map(\.detail).joined(separator: "; ")
            ))
        }
        for (k, v) in lines { print(k.padding(toLength: 10, withPad: " ", startingAt: 0) + "  " + v) }
        print("")
        print(
          Render.table(
            ["TABLE", "ROWS", "RAW", "STORED", "CHECKSUM"],
            summary.tables.map {
              [
                $0.name, String($0.rows), Render.bytes($0.rawSizeBytes), Render.bytes($0.storedSizeBytes),
                String(($0.checksum ?? "-").prefix(16)),
              ]
            }))
      }
      if let integrity, !integrity.ok { throw ExitCode(ExitStatus.verifyFailed.rawValue) }
    }
  }
}
