import ArgumentParser
import BackupCore
import BackupModel
import Foundation

extension Backup {
  struct Cleanup: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Remove what interrupted backups left: unfinished files, temp files, cloud uploads.",
      discussion: """
        Locally: backup files without a manifest whose writer is gone, and temp files of \
        interrupted manifest writes. With --cloud also: unfinished multipart uploads of ours \
        (their parts cost storage until aborted) and backup files in the bucket without a \
        manifest. Anything still being written on this machine is never touched; an upload this \
        machine did not start may still be running elsewhere, so it is removed only when older \
        than --older-than (default 24h). `create --cloud` does the same at its start.
        """)

    @Option(
      help: ArgumentHelp(
        "With --cloud: remove uploads not started here only when older than this (e.g. 30m, 12h, 7d; default 24h).",
        valueName: "duration"))
    var olderThan: String?

    @Flag(help: "Print what would be removed, remove nothing.")
    var dryRun = false

    @OptionGroup var cloud: CloudOptions

    @OptionGroup var common: CommonOptions

    func validate() throws {
      try cloud.validate()
      if olderThan != nil && !cloud.cloud { throw ValidationError("--older-than needs --cloud") }
      _ = try age()
    }

    /// `--older-than` in seconds.
    func age() throws -> TimeInterval {
      guard let text = olderThan else { return BackupService.defaultCleanupAge }
      let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800]
      guard let unit = text.last.flatMap({ units[$0] }), let n = Double(text.dropLast()), n >= 0, n.isFinite
      else {
        throw ValidationError(
          "--older-than needs a number and a unit s, m, h, d or w (e.g. 30m, 12h, 7d), got \"\(text)\"")
      }
      return n * unit
    }

    func run() throws {
      let service = common.service()
      try cloud.apply(to: service, common: common)
      let report = try service.cleanUp(olderThan: try age(), dryRun: dryRun)
      if common.json { return print(try Render.json(report)) }
      for item in report.removed {
        print(
          "\(dryRun ? "would remove" : "removed") \(item.kind.rawValue) \(item.location) (\(item.reason))")
      }
      for item in report.kept { print("kept \(item.kind.rawValue) \(item.location) (\(item.reason))") }
      let n = report.removed.count
      print("\(dryRun ? "would remove" : "removed") \(n) item\(n == 1 ? "" : "s"), kept \(report.kept.count)")
    }
  }
}
