import BackupModel
import BackupPipeline
import BackupStorage
import Foundation

/// `--cloud`: backups in a blob store beside (or instead of) the local directory. The layout in
/// the store is the directory's: `<id>.<ext>` and `<id>.manifest.json`, the manifest put last,
/// so the bucket alone is enough to list, verify, restore and import every backup in it.
extension BackupService {
  /// The store the backup file of `m` is read from: the local copy when there is one, else the
  /// cloud copy.
  func source(for m: Manifest) -> BlobStore {
    if let cloud, !store.exists(m.file.name) { return cloud }
    return store
  }

  /// Ids of complete backups in the cloud store (those with a manifest).
  func cloudManifestIDs(_ cloud: BlobStore) throws -> [String] {
    try cloud.list(prefix: "backup-").compactMap { info in
      guard info.name.hasSuffix(".manifest.json") else { return nil }
      let id = String(info.name.dropLast(".manifest.json".count))
      return BackupID.isValid(id) ? id : nil
    }
  }

  /// A backup in the cloud store by id, unique id prefix, object key or file name.
  public func cloudManifest(for reference: String) throws -> Manifest {
    guard let cloud else { throw BackupError(.usage, "no cloud store is configured") }
    let last = reference.split(separator: "/").last.map(String.init) ?? reference
    let wanted = last.hasPrefix("backup-") ? String(last.prefix { $0 != "." }) : last
    let ids = try cloudManifestIDs(cloud)
    let matches = ids.contains(wanted) ? [wanted] : ids.filter { $0.hasPrefix(wanted) }
    guard matches.count == 1 else {
      if matches.isEmpty {
        throw BackupError(
          .notFound, "no backup matches \"\(reference)\" locally or in \(cloud.location)",
          hint: "run `ai-shell backup list --cloud` to see the ids")
      }
      throw BackupError(
        .ambiguous, "\"\(reference)\" matches \(matches.count) backups in \(cloud.location)",
        hint: "give more characters of the id")
    }
    return try cloudManifest(id: matches[0], in: cloud)
  }

  /// The manifest of backup `id` in the cloud store, read by its exact name (no listing).
  func cloudManifest(id: String, in cloud: BlobStore) throws -> Manifest {
    let m: Manifest
    do {
      m = try Manifest.decode(try cloud.read(Catalog.manifestName(id)))
    } catch let e as BackupError {
      throw e
    } catch {
      throw BackupError(.corrupt, "manifest \(cloud.location)/\(Catalog.manifestName(id)) is not valid")
    }
    guard m.id == id else {
      throw BackupError(
        .corrupt, "manifest \(Catalog.manifestName(id)) in \(cloud.location) describes \(m.id)")
    }
    try m.validate()
    return m
  }

  /// A backup as a complete catalog entry (its manifest is there).
  static func cloudEntry(_ m: Manifest) -> CatalogEntry {
    CatalogEntry(id: m.id, status: .complete, manifest: m, fileName: m.file.name)
  }

  /// The complete backups in the cloud store, as catalog entries (retention of cloud schedules).
  public func cloudEntries() throws -> [CatalogEntry] {
    guard let cloud else { return [] }
    return try cloudManifestIDs(cloud).map { Self.cloudEntry(try cloudManifest(id: $0, in: cloud)) }
  }

  /// `list --cloud`: the local backups and every backup in the cloud store, each marked with
  /// where it is.
  public func listWithCloud() throws -> [BackupSummary] {
    guard let cloud else { return try list() }
    var local = try list()
    let ids = try cloudManifestIDs(cloud)
    let remote = Set(ids)
    for i in local.indices {
      local[i].location = remote.contains(local[i].id) ? "local+cloud" : "local"
      if remote.contains(local[i].id), let file = local[i].file {
        local[i].cloudFile = "\(cloud.location)/\((file as NSString).lastPathComponent)"
      }
    }
    let known = Set(local.map(\.id))
    for id in ids where !known.contains(id) {
      do {
        let m = try cloudManifest(id: id, in: cloud)
        var s = BackupSummary(entry: Self.cloudEntry(m), directory: "")
        s.file = nil
        s.location = "cloud"
        s.cloudFile = "\(cloud.location)/\(m.file.name)"
        local.append(s)
      } catch {
        logger.warning("\(cloud.location)/\(Catalog.manifestName(id)): \(error)")
      }
    }
    return local
  }

  /// A backup known only to the cloud store, as `delete` sees it.
  func cloudDeletionCandidate(_ idOrPrefix: String) throws -> CatalogEntry {
    Self.cloudEntry(try cloudManifest(for: idOrPrefix))
  }

  /// Removes a backup's objects from the cloud store, manifest first (from then on no reader
  /// takes it as complete). Returns the names removed. Retention (issue 8) calls this too.
  public func deleteFromCloud(_ id: String) throws -> [String] {
    guard let cloud else { return [] }
    let names = try cloud.list(prefix: id + ".").map(\.name).filter { $0.prefix { $0 != "." } == id }
    let manifest = Catalog.manifestName(id)
    var removed: [String] = []
    for name in names.filter({ $0 == manifest }) + names.filter({ $0 != manifest }) {
      try cloud.delete(name)
      removed.append("\(cloud.location)/\(name)")
    }
    return removed
  }

  /// `import --cloud`: copies a backup from the cloud store into the local directory, checking
  /// the file's size and SHA-256 on the way, the manifest written last.
  public func importFromCloud(_ reference: String, force: Bool) throws -> BackupSummary {
    guard let cloud else { throw BackupError(.usage, "no cloud store is configured") }
    let m = try cloudManifest(for: reference)
    try store.ensureDirectory()
    if store.exists(Catalog.manifestName(m.id)) {
      guard force else {
        throw BackupError(
          .refused, "backup \(m.id) is already in \(store.directory)", hint: "use --force to replace it")
      }
      // the local copy only: the cloud copy is the one being imported
      for name in try store.list() where name.hasPrefix(m.id + ".") { try store.remove(name) }
    }
    let input = try cloud.open(m.file.name)
    guard input.size == m.file.sizeBytes else {
      throw BackupError(
        .corrupt,
        "\(cloud.location)/\(m.file.name) has \(input.size) bytes, the manifest records \(m.file.sizeBytes)")
    }
    let output = try store.put(m.file.name)
    // format version 4, unencrypted: the file's SHA-256 chain is checked behind the download, up to
    // 16 stretches at once (PayloadChainCheck); otherwise one SHA-256 pass as the bytes arrive
    var chainCheck: PayloadChainCheck?
    var hashing: HashingOutput?
    do {
      if m.encryption == nil, let chain = m.payloadChain {
        chainCheck = PayloadChainCheck(
          chain: chain, input: try store.openForReading(m.file.name),
          label: "\(cloud.location)/\(m.file.name)")
      } else {
        hashing = HashingOutput(output)
      }
      progress?.begin("download", totalBytes: m.file.sizeBytes)
      let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
      defer { buffer.deallocate() }
      var offset: Int64 = 0
      while offset < input.size {
        let n: Int
        if let hashing {
          // a fresh array per read, handed to the hashing lane as it is (no copy for the lane)
          var got = 0
          let chunk = try [UInt8](unsafeUninitializedCapacity: 1 << 20) { b, count in
            got = try input.read(at: offset, into: UnsafeMutableRawBufferPointer(b))
            count = got
          }
          try hashing.write(array: chunk)
          n = got
        } else if let lent = try input.borrow(at: offset, limit: 1 << 20) {
          // S3's download window itself: written to the file without a copy
          n = lent.count
          try output.write(lent)
        } else {
          n = try input.read(at: offset, into: buffer)
          try output.write(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        }
        guard n > 0 else { throw BackupError(.corrupt, "\(cloud.location)/\(m.file.name) ended early") }
        offset += Int64(n)
        chainCheck?.advance(to: offset)
        progress?.advance(to: offset)
      }
      progress?.end()
      do {
        try chainCheck?.finish()
      } catch let e as BackupError {
        throw BackupError(e.status, e.message, hint: "nothing was imported")
      }
      if let hashing, hashing.finalizeHex() != m.file.sha256 {
        throw BackupError(
          .corrupt, "\(cloud.location)/\(m.file.name) fails its SHA-256 check", hint: "nothing was imported")
      }
      try output.finish()
      try store.writeAtomically(Catalog.manifestName(m.id), try m.encoded())
    } catch {
      chainCheck?.cancel()
      output.abort()
      throw error
    }
    var s = BackupSummary(entry: Self.cloudEntry(m), directory: store.directory)
    s.location = "local+cloud"
    s.cloudFile = "\(cloud.location)/\(m.file.name)"
    return s
  }
}

/// Where `create` writes the backup file: the local directory, the cloud store, or both at once
/// (one pass over the data; the upload streams while the dump runs).
final class CreateTarget {
  let name: String
  let local: BlobUpload?
  let localStore: LocalStore?
  let upload: BlobUpload?
  let cloud: BlobStore?
  let output: ByteOutput
  /// Locked while the upload runs (BackupService.uploadMarker).
  let marker: (store: LocalStore, name: String, file: LocalFileOutput)?
  private var published = false

  init(name: String, id: String, directory: LocalStore, keepLocal: Bool, cloud: BlobStore?) throws {
    let localStore = keepLocal || cloud == nil ? directory : nil
    let markerName = BackupService.uploadMarker(id)
    let markerFile = try cloud.map { _ in try directory.create(markerName) }
    var local: BlobUpload?
    var upload: BlobUpload?
    do {
      local = try localStore?.put(name)
      upload = try cloud?.put(name)
    } catch {
      local?.abort()
      if markerFile != nil { try? directory.remove(markerName) }
      throw error
    }
    self.name = name
    self.localStore = localStore
    self.cloud = cloud
    self.local = local
    self.upload = upload
    marker = markerFile.map { (store: directory, name: markerName, file: $0) }
    output = TeeOutput([local, upload].compactMap { $0 })
  }

  /// Drops the upload marker (after success or a clean failure: nothing is left to clean up).
  func releaseMarker() {
    guard let marker else { return }
    try? marker.store.remove(marker.name)
    marker.file.abandon()
  }

  var description: String {
    [
      localStore.map { ($0.directory as NSString).appendingPathComponent(name) },
      cloud.map { "\($0.location)/\(name)" },
    ]
    .compactMap { $0 }.joined(separator: " and ")
  }

  /// Completes the file everywhere (the upload's last parts go up now).
  func finish() throws {
    try local?.finish()
    try upload?.finish()
  }

  /// Writes the manifest: to the cloud store first, then locally, so that a local copy never
  /// claims a cloud copy that is missing.
  func publish(_ manifestName: String, _ data: Data) throws {
    try cloud?.put(manifestName, data: data)
    published = true
    releaseMarker()
    try localStore?.writeAtomically(manifestName, data)
  }

  /// After a failure: nothing of the backup stays, neither the file nor an unfinished upload.
  /// When the store cannot be reached to remove them (the server died), the marker stays,
  /// unlocked, so that the next run or `cleanup --cloud` knows they are this machine's to remove.
  func abandon(manifestName: String) {
    local?.abort()
    try? localStore?.remove(name)
    try? localStore?.remove(manifestName)
    var clean = upload?.abort() ?? true
    if !published, let cloud {
      // briefly: the store may be gone, and the marker covers what stays
      let deleted: Void? = try? RetryPolicy.brief.run {
        try innermostStore(cloud).delete(name)
      }
      clean = deleted != nil && clean
    }
    if clean {
      releaseMarker()
    } else {
      marker?.file.abandon()  // unlocks it
    }
  }
}
