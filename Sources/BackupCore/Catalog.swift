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

/// One backup as `list` shows it: a `CatalogEntry` whose manifest is read as a summary.
public struct CatalogSummary: Sendable {
  public var id: String
  public var status: CatalogEntry.Status
  public var manifest: ManifestSummary?
  public var fileName: String?
}

/// The catalog is the backup directory itself: manifests are the truth and are read on demand
/// (a cache can come later without changing this interface).
public struct Catalog: Sendable {
  public let store: LocalStore

  public init(store: LocalStore) { self.store = store }

  public static func manifestName(_ id: String) -> String { "\(id).manifest.json" }

  /// Reads every entry. A manifest that does not parse or validate is reported through
  /// `problems` and its backup is listed as damaged, never as complete.
  public func entries(problems: ((String) -> Void)? = nil) throws -> [CatalogEntry] {
    let listing = Listing(try store.list())
    return listing.ids.sorted().map { entry($0, in: listing, problems: problems) }
  }

  /// Every entry as `list` shows it: as `entries`, with each manifest read as a
  /// `ManifestSummary` (its parts' members, schema objects and checksum checkpoints skipped;
  /// `ManifestSummary.validate` checks what it has), so listing a directory of backups of
  /// databases with thousands of tables does not decode every member of every one.
  public func summaries(problems: ((String) -> Void)? = nil) throws -> [CatalogSummary] {
    let listing = Listing(try store.list())
    return listing.ids.sorted().map { id in
      guard listing.manifests.contains(id) else {
        let e = entry(id, in: listing, problems: problems)
        return CatalogSummary(id: id, status: e.status, manifest: nil, fileName: e.fileName)
      }
      do {
        let m = try loadManifest(id, decode: ManifestSummary.decode, id: \.id) { try $0.validate() }
        return CatalogSummary(id: id, status: .complete, manifest: m, fileName: m.file.name)
      } catch {
        problems?("\(Self.manifestName(id)): \(error)")
        return CatalogSummary(id: id, status: .damaged, manifest: nil, fileName: listing.dataFiles[id])
      }
    }
  }

  /// The entry of exactly this id (not a prefix), or nil; only its manifest is read.
  public func entry(id: String) throws -> CatalogEntry? {
    let listing = Listing(try store.list())
    return listing.ids.contains(id) ? entry(id, in: listing, problems: nil) : nil
  }

  /// The data files that have no manifest file (incomplete or in progress, as `entries` lists
  /// them), without reading any manifest: what a create's clean-up looks at, in time that does
  /// not grow with the number or size of the complete backups' manifests.
  public func unfinishedEntries() throws -> [CatalogEntry] {
    let listing = Listing(try store.list())
    return listing.dataFiles.keys.filter { !listing.manifests.contains($0) }.sorted().map {
      entry($0, in: listing, problems: nil)
    }
  }

  /// The backups of a directory listing, by id, before any manifest is read.
  struct Listing {
    /// Ids that have a manifest file (complete, or damaged when it does not load).
    var manifests: Set<String> = []
    /// Each id's data file (the first listed, as `entries` has always taken it).
    var dataFiles: [String: String] = [:]
    var ids: Set<String> { manifests.union(dataFiles.keys) }

    init(_ names: [String]) {
      for name in names where name.hasPrefix("backup-") {
        if name.hasSuffix(".manifest.json") {
          let id = String(name.dropLast(".manifest.json".count))
          if BackupID.isValid(id) { manifests.insert(id) }
        } else {
          let id = String(name.prefix { $0 != "." })
          if BackupID.isValid(id), dataFiles[id] == nil { dataFiles[id] = name }
        }
      }
    }
  }

  /// One id's entry: its manifest read (complete or damaged), or its data file's lock looked
  /// at (in progress or incomplete).
  private func entry(_ id: String, in listing: Listing, problems: ((String) -> Void)?) -> CatalogEntry {
    if listing.manifests.contains(id) {
      do {
        let m = try loadManifest(id)
        return CatalogEntry(id: id, status: .complete, manifest: m, fileName: m.file.name)
      } catch {
        problems?("\(Self.manifestName(id)): \(error)")
        return CatalogEntry(id: id, status: .damaged, manifest: nil, fileName: listing.dataFiles[id])
      }
    }
    let file = listing.dataFiles[id]!
    return CatalogEntry(
      id: id, status: store.isLocked(file) ? .inProgress : .incomplete, manifest: nil, fileName: file)
  }

  public func loadManifest(_ id: String) throws -> Manifest {
    try loadManifest(id, decode: Manifest.decode, id: \.id) { try $0.validate() }
  }

  /// Reads `id`'s manifest file, decodes it (as a `Manifest` or a `ManifestSummary`) and checks
  /// that it describes `id` and is valid.
  private func loadManifest<M>(
    _ id: String, decode: (Data) throws -> M, id idOf: (M) -> String, validate: (M) throws -> Void
  ) throws -> M {
    let name = Catalog.manifestName(id)
    let data: Data
    do {
      data = try store.readAll(name)
    } catch {
      throw BackupError(.notFound, "backup \(id) has no manifest", hint: "it is unfinished or was deleted")
    }
    let manifest: M
    do {
      manifest = try decode(data)
    } catch {
      throw BackupError(
        .corrupt, "manifest \(name) is not valid JSON or misses fields",
        hint: "the backup cannot be trusted; delete it with `ai-shell backup delete \(id) --force`")
    }
    guard idOf(manifest) == id else {
      throw BackupError(.corrupt, "manifest \(name) describes another backup (\(idOf(manifest)))")
    }
    try validate(manifest)
    return manifest
  }

  /// Resolves a full id or a unique prefix. `includeUnfinished` lets `delete` find incomplete ones.
  /// Only the matching backup's manifest is read (ids come from the file names), so resolving
  /// one backup does not slow down with the number of backups kept.
  public func resolve(_ idOrPrefix: String, includeUnfinished: Bool = false) throws -> CatalogEntry {
    let listing = Listing(try store.list())
    let ids = includeUnfinished ? listing.ids : listing.manifests
    let matches = ids.contains(idOrPrefix) ? [idOrPrefix] : ids.filter { $0.hasPrefix(idOrPrefix) }.sorted()
    switch matches.count {
    case 0:
      throw BackupError(
        .notFound, "no backup matches \"\(idOrPrefix)\" in \(store.directory)",
        hint: "run `ai-shell backup list` to see the ids")
    case 1:
      return entry(matches[0], in: listing, problems: nil)
    default:
      let names = matches.prefix(5).joined(separator: ", ")
      throw BackupError(
        .ambiguous,
        "\"\(idOrPrefix)\" matches \(matches.count) backups: \(names)\(matches.count > 5 ? ", ..." : "")",
        hint: "give more characters of the id")
    }
  }
}
