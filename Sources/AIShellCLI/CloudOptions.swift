import ArgumentParser
import BackupCore
import BackupModel
import Foundation

/// `--cloud` and its transfer flags (create, restore, delete, import, list, verify). The store
/// comes from the config (`cloudProvider`, `cloudConfig.*`); credentials from the AWS
/// environment variables or profile files.
struct CloudOptions: ParsableArguments {
  @Flag(help: "Also use the configured cloud store (cloudProvider, cloudConfig.* in the config).")
  var cloud = false

  @Option(
    help: ArgumentHelp(
      "Limit cloud transfers to this many bytes per second (suffixes K, M, G: 1024-based).", valueName: "rate"
    ))
  var limitRate: String?

  func validate() throws {
    if !cloud && limitRate != nil { throw ValidationError("--limit-rate needs --cloud") }
    _ = try rate()
  }

  /// `--limit-rate` in bytes per second.
  func rate() throws -> Int64? {
    guard let text = limitRate?.uppercased() else { return nil }
    let units: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
    var digits = Substring(text)
    var unit: Int64 = 1
    if let last = text.last, let u = units[last] {
      unit = u
      digits = digits.dropLast()
    }
    guard let n = Int64(digits), n > 0 else {
      throw ValidationError(
        "--limit-rate needs a positive number of bytes per second (e.g. 500K, 20M), got \"\(limitRate!)\"")
    }
    return n * unit
  }

  /// Connects `service` to the cloud store when --cloud was given (`parallel`: create's
  /// `--parallel`, parts uploaded at once).
  func apply(to service: BackupService, common: CommonOptions, parallel: Int? = nil) throws {
    guard cloud else { return }
    let config = try common.loadConfig()
    service.cloud = try CloudConfig.makeStore(
      config, parallel: parallel, limitRate: try rate(), logger: service.logger)
    service.keepLocalCopy = config.keepLocalCopy
  }
}
