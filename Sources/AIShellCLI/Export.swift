import ArgumentParser
import BackupCore
import BackupModel
import Foundation

extension Backup {
  struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Copy a backup out as one standard file, with its manifest beside it.",
      discussion: """
        The destination is a folder (an existing one, one ending in /, or a new name without a dot; \
        created) or a file path. The copy is checked against the manifest while it is written. \
        --compress re-encodes every member and --encrypt encrypts the copy with age (the manifest \
        beside the copy describes the copy). \
        Existing files are never overwritten without --force (exit 9). With --cloud a backup that \
        is only in the cloud store is downloaded into the export (it is not added to the catalog: \
        `import --cloud` does that).
        """)

    @Argument(help: "The backup id or a unique prefix of it.")
    var id: String

    @Argument(help: "A folder or a file path.")
    var destination: String

    @Flag(
      inversion: .prefixedNo,
      help: "Write <id>.manifest.json beside the file (default; --no-include-metadata leaves it out).")
    var includeMetadata = true

    @Option(help: "Re-encode to this compression (gzip, bzip2, zstd, none).")
    var compress: CompressionAlgorithm?

    @Option(help: "Compression level for --compress.")
    var level: Int?

    @Flag(help: "Overwrite existing files at the destination.")
    var force = false

    @OptionGroup var encryption: EncryptOptions

    @OptionGroup var cloud: CloudOptions

    @OptionGroup var common: CommonOptions

    func validate() throws {
      if level != nil && compress == nil { throw ValidationError("--level needs --compress") }
      try encryption.validate()
      try cloud.validate()
    }

    func run() throws {
      let service = common.service()
      try cloud.apply(to: service, common: common)
      let outcome = try service.export(
        id,
        options: .init(
          destination: destination, includeMetadata: includeMetadata, compression: compress, level: level,
          force: force, encryption: try encryption.request(config: common.loadConfig())))
      if common.json {
        print(try Render.json(outcome))
      } else {
        print(outcome.file)
        if let m = outcome.manifest { print(m) }
      }
    }
  }
}
