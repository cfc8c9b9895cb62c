import BackupModel
import BackupStorage
import Foundation

/// One backup as the directory shows it: complete (a valid manifest) or unfinished (a data file
/// without a manifest).
public struct CatalogEntry: Sendable {
  public enum Status: String, Codable, Sendable {
    case complete
    /// A data file without a manifest whose writer is gone (killed, failed): safe to clean up.
    case incomplete
    /// A data file without a manifest whose writer still holds its lock.
    case inProgress = "in-progress"
    /// A manifest exists but does not parse or validate: never cleaned up automatically.
    case damaged
  }
  public var id: String
  public var status: Status
  public var manifest: Manifest?
  /// The data file name, when known.
  public var fileName: String?
}

/// The catalog is the backup directory itself: manifests are the truth and are read on demand
/// (a cache can come later without changing this interface).
public struct Catalog: Sendable {
  public let store: LocalStore

  public init(store: LocalStore) { self.store = store }

  public static func manifestName(_ id: String) -> String { "\(id).manifest.json" }

  /// Reads every entry. A manifest that does not parse or validate is reported through
  /// `problems` and its backup is listed as incomplete, never as complete.
  public func entries(problems: ((String) -> Void)? = nil) throws -> [CatalogEntry] {
    let names = try store.list()
    var byID: [String: CatalogEntry] = [:]
    for id in Self.manifestIDs(names) {
      do {
        let m = try loadManifest(id)
        byID[id] = CatalogEntry(id: id, status: .complete, manifest: m, fileName: m.file.name)
      } catch {
        problems?("\(Self.manifestName(id)): \(error)")
        byID[id] = CatalogEntry(id: id, status: .damaged, manifest: nil, fileName: nil)
      }
    }
    for name in names where name.hasPrefix("backup-") && !name.hasSuffix(".manifest.json") {
      let id = String(name.prefix { $0 != "." })
      guard BackupID.isValid(id) else { continue }
      if let known = byID[id] {
        if known.status == .damaged && known.fileName == nil { byID[id]?.fileName = name }
        continue
      }
      byID[id] = unfinished(id: id, fileName: name)
    }
    return byID.values.sorted { $0.id < $1.id }
  }

  /// The data files that have no manifest file (incomplete or in progress, as `entries` lists
  /// them), without reading any manifest: what a create's clean-up looks at, in time that does
  /// not grow with the number or size of the complete backups' manifests.
  public func unfinishedEntries() throws -> [CatalogEntry] {
    let names = try store.list()
    let complete = Set(Self.manifestIDs(names))
    return names.compactMap { name -> CatalogEntry? in
      guard name.hasPrefix("backup-"), !name.hasSuffix(".manifest.json") else { return nil }
      let id = String(name.prefix { $0 != "." })
      guard BackupID.isValid(id), !complete.contains(id) else { return nil }
      return unfinished(id: id, fileName: name)
    }.sorted { $0.id < $1.id }
  }

  private static func manifestIDs(_ names: [String]) -> [String] {
    names.compactMap { name in
      guard name.hasSuffix(".manifest.json"), !name.hasPrefix(".") else { return nil }
      let id = String(name.dropLast(".manifest.json".count))
      return BackupID.isValid(id) ? id : nil
    }
  }

  private func unfinished(id: String, fileName: String) -> CatalogEntry {
    CatalogEntry(
      id: id, status: store.isLocked(fileName) ? .inProgress : .incomplete, manifest: nil, fileName: fileName)
  }

  public func loadManifest(_ id: String) throws -> Manifest {
    let name = Catalog.manifestName(id)
    let data: Data
    do {
      data = try store.readAll(name)
    } catch {
      throw BackupError(.notFound, "backup \(id) has no manifest", hint: "it is unfinished or was deleted")
    }
    let manifest: Manifest
    do {
      manifest = try Manifest.decode(data)
    } catch {
      throw BackupError(
        .corrupt, "manifest \(name) is not valid JSON or misses fields",
        hint: "the backup cannot be trusted; delete it with `ai-shell backup delete \(id) --force`")
    }
    guard manifest.id == id else {
      throw BackupError(.corrupt, "manifest \(name) describes another backup (\(manifest.id))")
    }
    try manifest.validate()
    return manifest
  }

  /// Resolves a full id or a unique prefix. `includeUnfinished` lets `delete` find incomplete ones.
  public func resolve(_ idOrPrefix: String, includeUnfinished: Bool = false) throws -> CatalogEntry {
    let all = try entries().filter { includeUnfinished || $0.status == .complete || $0.status == .damaged }
    if let exact = all.first(where: { $0.id == idOrPrefix }) { return exact }
    let matches = all.filter { $0.id.hasPrefix(idOrPrefix) }
    switch matches.count {
    case 0:
      throw BackupError(
        .notFound, "no backup matches \"\(idOrPrefix)\" in \(store.directory)",
        hint: "run `ai-shell backup list` to see the ids")
    case 1:
      return matches[0]
    default:
      let names = matches.prefix(5).map(\.id).joined(separator: ", ")
      throw BackupError(
        .ambiguous,
        "\"\(idOrPrefix)\" matches \(matches.count) backups: \(names)\(matches.count > 5 ? ", ..." : "")",
        hint: "give more characters of the id")
    }
  }
}
