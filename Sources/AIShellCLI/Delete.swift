import ArgumentParser
import BackupCore
import BackupModel
import Foundation

extension Backup {
  struct Delete: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Delete a backup's file and manifest (also unfinished backups).",
      discussion:
        "Asks for confirmation on a terminal; without one it refuses unless --force is given. With --cloud the cloud copy is deleted too."
    )

    @Argument(help: "The backup id or a unique prefix of it.")
    var id: String

    @Flag(help: "Delete without asking.")
    var force = false

    @OptionGroup var cloud: CloudOptions

    @OptionGroup var common: CommonOptions

    func run() throws {
      let service = common.service()
      try cloud.apply(to: service, common: common)
      let entry = try service.deletionCandidate(id)
      if !force {
        guard isTerminal(0) else {
          throw BackupError(
            .refused, "not deleting \(entry.id) without confirmation", hint: "re-run with --force")
        }
        let size = entry.manifest.map { Render.bytes($0.file.sizeBytes) } ?? entry.status.rawValue
        let cloudNote = service.cloud.map { " here and in \($0.location)" } ?? ""
        FileHandle.standardError.write(Data("Delete backup \(entry.id) (\(size))\(cloudNote)? [y/N] ".utf8))
        let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased()
        guard answer == "y" || answer == "yes" else {
          throw BackupError(.refused, "kept \(entry.id): deletion not confirmed")
        }
      }
      let outcome = try service.delete(entry)
      if common.json {
        print(try Render.json(outcome))
      } else {
        print("deleted \(outcome.id)")
      }
    }
  }
}
