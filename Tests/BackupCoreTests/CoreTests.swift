import BackupModel
import BackupStorage
import Foundation
import TestSupport
import Testing

@testable import BackupCore

@Suite struct TablePatternTests {
  @Test func namesAndGlobs() throws {
    let all = ["public.orders", "public.order_items", "sales.order_2024", "sales.refunds"]
    #expect(try TablePatterns.resolve(["sales.order_*"], among: all, place: "") == ["sales.order_2024"])
    #expect(try TablePatterns.resolve(["public.*", "sales.refunds"], among: all, place: "").count == 3)
    #expect(try TablePatterns.resolve(["*.order?"], among: all, place: "") == ["public.orders"])
    // PostgreSQL: a name without a schema means public
    #expect(
      try TablePatterns.resolve(["orders", "order_*"], among: all, place: "", defaultSchema: "public")
        == ["public.orders", "public.order_items"])
    // the available order, not the pattern order, and no duplicates
    #expect(try TablePatterns.resolve(["sales.*", "*"], among: all, place: "") == all)
    #expect { try TablePatterns.resolve(["public.order"], among: all, place: "in db") } throws: {
      ($0 as? BackupError)?.description.contains("no table \"public.order\" in db") == true
    }
    #expect { try TablePatterns.resolve(["x.*", "public.*"], among: all, place: "in db") } throws: {
      ($0 as? BackupError)?.description.contains("no table matches \"x.*\" in db") == true
    }
  }
}

@Suite struct SettingsTests {
  @Test func backupDirectoryPrecedence() {
    let env = ["AI_SHELL_BACKUP_DIR": "/env/dir", "XDG_DATA_HOME": "/xdg", "HOME": "/home/u"]
    #expect(BackupDirectory.resolve(flag: "/flag/dir", environment: env) == "/flag/dir")
    #expect(BackupDirectory.resolve(flag: nil, environment: env) == "/env/dir")
    #expect(
      BackupDirectory.resolve(flag: nil, environment: ["XDG_DATA_HOME": "/xdg"]) == "/xdg/ai-shell/backups")
    #expect(
      BackupDirectory.resolve(flag: nil, environment: ["HOME": "/home/u"])
        == "/home/u/.local/share/ai-shell/backups")
  }

  @Test func databaseLocatorAcceptsPathsAndSQLiteURLs() throws {
    #expect(try DatabaseLocator("/srv/app.db").location == "/srv/app.db")
    #expect(try DatabaseLocator("sqlite:///srv/my%20app.db").location == "/srv/my app.db")
    #expect(try DatabaseLocator("relative.db").location.hasSuffix("/relative.db"))
    for bad in ["", "sqlite://relative.db", "ftp://x"] {
      #expect { _ = try DatabaseLocator(bad) } throws: { ($0 as? BackupError)?.status == .usage }
    }
    #expect { _ = try DatabaseLocator("mongodb://u@h/db") } throws: {
      ($0 as? BackupError)?.description.contains("not available") == true
    }
    let pg = try DatabaseLocator("postgres://u:secret@h/db")
    #expect(pg.engineKind == .postgres)
    #expect(pg.location == "postgres://u@h/db")
  }
}

@Suite struct CatalogTests {
  func manifest(_ id: String, file: String) -> Manifest {
    Manifest(
      id: id, name: nil, createdAt: Date(), durationSeconds: 0,
      database: .init(engine: .sqlite, location: "/x.db", serverVersion: "3", sizeBytes: nil), format: .sql,
      compression: .init(algorithm: .none, level: 0, memberSizeBytes: 1),
      file: .init(name: file, sizeBytes: 0, sha256: String(repeating: "0", count: 64)), rawSizeBytes: 0,
      parts: [], objects: [])
  }

  @Test func resolvesPrefixesAndReportsAmbiguity() throws {
    let dir = TempDir()
    let store = LocalStore(directory: dir.path)
    let catalog = Catalog(store: store)
    for id in [
      "backup-20260101T000000Z-aaaa", "backup-20260101T000000Z-aabb", "backup-20260202T000000Z-cccc",
    ] {
      try store.writeAtomically(Catalog.manifestName(id), try manifest(id, file: id + ".sql").encoded())
      _ = FileManager.default.createFile(atPath: dir.file(id + ".sql"), contents: Data())
    }
    #expect(try catalog.resolve("backup-20260202").id == "backup-20260202T000000Z-cccc")
    #expect(try catalog.resolve("backup-20260101T000000Z-aabb").id == "backup-20260101T000000Z-aabb")
    #expect { _ = try catalog.resolve("backup-20260101T000000Z-aa") } throws: { error in
      let e = error as? BackupError
      return e?.status == .ambiguous && e!.message.contains("-aaaa") && e!.message.contains("-aabb")
    }
    #expect { _ = try catalog.resolve("backup-2030") } throws: { ($0 as? BackupError)?.status == .notFound }
  }

  /// `list` reads each manifest as a `ManifestSummary` (no members, objects or checkpoints): the
  /// same summary a whole manifest gives, and a manifest whose parts do not cover its file is
  /// damaged either way; a broken member layout only a whole read (status, restore, verify)
  /// finds. `entry(id:)` takes an exact id, never a prefix.
  @Test func listReadsSummariesOfTheManifests() throws {
    let dir = TempDir()
    let store = LocalStore(directory: dir.path)
    let catalog = Catalog(store: store)
    func write(_ id: String, storedLength: Int64 = 10, memberRaw: Int64 = 0) throws -> Manifest {
      var m = manifest(id, file: id + ".sql.zst")
      m.file.sizeBytes = 10
      m.rawSizeBytes = 20
      m.parts = [
        .init(
          kind: .table, table: "main.t", storedOffset: 0, storedLength: storedLength, rawSize: 20,
          storedSha256: String(repeating: "a", count: 64), rows: 3, contentChecksum: "c",
          members: [.init(rawOffset: memberRaw, rawLength: 20, storedOffset: 0, storedLength: storedLength)])
      ]
      m.objects = [SchemaObject(type: "table", name: "main.t", table: "main.t")]
      m.formatVersion = m.minimumFormatVersion
      try store.writeAtomically(Catalog.manifestName(id), try m.encoded())
      _ = FileManager.default.createFile(atPath: dir.file(m.file.name), contents: Data(count: 10))
      return m
    }
    let good = try write("backup-20260101T000000Z-good")
    _ = try write("backup-20260101T000000Z-span", storedLength: 9)
    _ = try write("backup-20260101T000000Z-memb", memberRaw: 1)
    let listed = Dictionary(uniqueKeysWithValues: try catalog.summaries().map { ($0.id, $0) })
    let whole = Dictionary(uniqueKeysWithValues: try catalog.entries().map { ($0.id, $0.status) })
    let summary = try #require(listed["backup-20260101T000000Z-good"]?.manifest)
    let expected = ManifestSummary(good)
    #expect(summary.parts.map(\.table) == expected.parts.map(\.table))
    #expect(summary.parts.map(\.rows) == [3] && summary.parts.map(\.storedLength) == [10])
    let reread = try catalog.loadManifest(good.id)  // (dates are stored to the second)
    #expect(summary.createdAt == reread.createdAt && summary.file == good.file && summary.id == good.id)
    #expect(listed["backup-20260101T000000Z-span"]?.status == .damaged)
    #expect(whole["backup-20260101T000000Z-span"] == .damaged)
    #expect(listed["backup-20260101T000000Z-memb"]?.status == .complete)
    #expect(whole["backup-20260101T000000Z-memb"] == .damaged)
    #expect(try catalog.entry(id: "backup-20260101T000000Z-good")?.status == .complete)
    #expect(try catalog.entry(id: "backup-20260101T000000Z-go") == nil)
  }

  @Test func unfinishedFilesAreListedAndCleanedButDamagedManifestsAreKept() throws {
    let dir = TempDir()
    let store = LocalStore(directory: dir.path)
    let catalog = Catalog(store: store)
    _ = FileManager.default.createFile(
      atPath: dir.file("backup-20260101T000000Z-dead.sql.zst"), contents: Data([1]))
    try Data("{".utf8).write(to: URL(fileURLWithPath: dir.file("backup-20260101T000000Z-bad0.manifest.json")))
    _ = FileManager.default.createFile(
      atPath: dir.file("backup-20260101T000000Z-bad0.sql"), contents: Data([1]))
    // a file still being written (locked) is in progress, not incomplete
    let live = try store.create("backup-20260101T000000Z-live.sql")
    let entries = try catalog.entries()
    let status = Dictionary(uniqueKeysWithValues: entries.map { ($0.id, $0.status) })
    #expect(status["backup-20260101T000000Z-dead"] == .incomplete)
    #expect(status["backup-20260101T000000Z-bad0"] == .damaged)
    #expect(status["backup-20260101T000000Z-live"] == .inProgress)
    // what a create's clean-up reads: the same unfinished files, without parsing any manifest
    #expect(
      try catalog.unfinishedEntries().map { "\($0.id) \($0.status.rawValue)" }
        == ["backup-20260101T000000Z-dead incomplete", "backup-20260101T000000Z-live in-progress"])
    // resolving reads only the match's manifest, and gives what `entries` gives for it
    let bad = try catalog.resolve("backup-20260101T000000Z-bad")
    #expect(bad.status == .damaged && bad.fileName == "backup-20260101T000000Z-bad0.sql")
    #expect { _ = try catalog.resolve("backup-20260101T000000Z-dead") } throws: {
      ($0 as? BackupError)?.status == .notFound
    }
    #expect(try catalog.resolve("backup-20260101T000000Z-de", includeUnfinished: true).status == .incomplete)
    #expect { _ = try catalog.resolve("backup-20260101T000000Z", includeUnfinished: true) } throws: {
      ($0 as? BackupError)?.status == .ambiguous
    }
    // temp files of manifest writes: a dead writer's go, a live one's (ours) stays
    let deadTemp = ".backup-20260101T000000Z-bad0.manifest.json.tmp-999999999"
    let liveTemp = ".backup-20260101T000000Z-bad0.manifest.json.tmp-\(getpid())"
    for name in [deadTemp, liveTemp] {
      _ = FileManager.default.createFile(atPath: dir.file(name), contents: Data())
    }
    let service = BackupService(backupDirectory: dir.path)
    let dry = try service.cleanUp(dryRun: true)
    #expect(
      dry.removed.map(\.location) == [dir.file("backup-20260101T000000Z-dead.sql.zst"), dir.file(deadTemp)])
    #expect(dry.kept.map(\.location) == [dir.file("backup-20260101T000000Z-live.sql")])
    #expect(store.exists("backup-20260101T000000Z-dead.sql.zst") && store.exists(deadTemp))
    let done = try service.cleanUp(dryRun: false)
    #expect(done.removed.count == 2 && !done.dryRun)
    #expect(!store.exists("backup-20260101T000000Z-dead.sql.zst") && !store.exists(deadTemp))
    #expect(store.exists(liveTemp))
    #expect(store.exists("backup-20260101T000000Z-bad0.sql"))
    #expect(store.exists("backup-20260101T000000Z-live.sql"))
    try live.close(sync: false)
  }

  @Test func storeRefusesNamesThatEscape() {
    let store = LocalStore(directory: "/tmp/x")
    for bad in ["../etc/passwd", "a/b", "..", "."] {
      #expect { _ = try store.path(of: bad) } throws: { ($0 as? BackupError)?.status == .usage }
    }
  }
}

@Suite struct ManifestTests {
  /// A manifest of one table part of `size` stored bytes (20 raw).
  func oneTable(size: Int64, storedSha256: String?, checkpoints: [Manifest.Checkpoint]? = nil) -> Manifest {
    let part = Manifest.Part(
      kind: .table, table: "t", storedOffset: 0, storedLength: size, rawSize: 20, storedSha256: storedSha256,
      rows: 1, contentChecksum: nil,
      members: [.init(rawOffset: 0, rawLength: 20, storedOffset: 0, storedLength: size)])
    return Manifest(
      id: "backup-20260101T000000Z-abcd", name: nil, createdAt: Date(timeIntervalSince1970: 1_800_000_000),
      durationSeconds: 0,
      database: .init(engine: .sqlite, location: "/x.db", serverVersion: "3", sizeBytes: nil), format: .sql,
      compression: .init(algorithm: .gzip, level: 6, memberSizeBytes: 1 << 20),
      file: .init(name: "f.sql.gz", sizeBytes: size, sha256: String(repeating: "b", count: 64)),
      rawSizeBytes: 20, parts: [part], objects: [], sha256Checkpoints: checkpoints)
  }

  @Test func validateRejectsBrokenLayouts() throws {
    var m = oneTable(size: 10, storedSha256: String(repeating: "a", count: 64))
    try m.validate()
    let decoded = try Manifest.decode(try m.encoded())
    #expect(decoded == m)
    var gap = m
    gap.file.sizeBytes = 11
    #expect(throws: BackupError.self) { try gap.validate() }
    var escape = m
    escape.file.name = "../f"
    #expect(throws: BackupError.self) { try escape.validate() }
    #expect(m.formatVersion == 3, "parts with storedSha256 need format version 3")
    var old = m
    old.formatVersion = 2
    #expect { try old.validate() } throws: { ($0 as? BackupError)?.message.contains("3 needed") == true }
    var unhashed = m
    unhashed.parts[0].storedSha256 = nil
    #expect(throws: BackupError.self) { try unhashed.validate() }
    unhashed.parts[0].sha256 = String(repeating: "c", count: 64)  // an older manifest's decoded hash
    unhashed.formatVersion = 1
    try unhashed.validate()
    unhashed.parts[0].sha256 = "not-hex"
    #expect(throws: BackupError.self) { try unhashed.validate() }
    m.formatVersion = 99
    #expect { try m.validate() } throws: { ($0 as? BackupError)?.message.contains("newer") == true }
  }

  /// Format version 4: parts without digests of their own, checked through the payload's SHA-256
  /// checkpoints; an encrypted backup also records its payload's SHA-256.
  @Test func version4CheckpointsAreValidated() throws {
    let state = String(repeating: "a", count: 64)
    let m = oneTable(
      size: 200, storedSha256: nil,
      checkpoints: [.init(offset: 64, state: state), .init(offset: 192, state: state)])
    try m.validate()
    #expect(m.formatVersion == 4)
    #expect(try Manifest.decode(try m.encoded()) == m)
    #expect(m.payloadChain?.start(before: 100).offset == 64)
    #expect(m.payloadChain?.start(before: 10).state == nil)
    #expect(m.payloadChain?.end(after: 100).offset == 192)
    #expect(m.payloadChain?.end(after: 193).offset == 200)
    #expect(m.payloadChain?.end(after: 193).state == nil)
    #expect(m.payloadChain?.between(0, 200).count == 2)
    for bad in [
      [Manifest.Checkpoint(offset: 100, state: state)],  // not on a block edge
      [.init(offset: 192, state: state), .init(offset: 64, state: state)],  // out of order
      [.init(offset: 256, state: state)],  // past the payload
      [.init(offset: 64, state: "xyz")],
    ] {
      var broken = m
      broken.sha256Checkpoints = bad
      #expect(throws: BackupError.self) { try broken.validate() }
    }
    var old = m
    old.formatVersion = 3
    #expect { try old.validate() } throws: { ($0 as? BackupError)?.message.contains("4 needed") == true }
    var encrypted = m
    encrypted.file.sizeBytes = 400
    encrypted.encryption = .init(recipients: ["age1x"], payloadSizeBytes: 200)
    #expect(throws: BackupError.self) { try encrypted.validate() }  // no payload SHA-256
    encrypted.encryption?.payloadSha256 = String(repeating: "c", count: 64)
    try encrypted.validate()
    #expect(encrypted.payloadChain?.sha256 == String(repeating: "c", count: 64))
  }
}

@Suite struct BackupIDTests {
  @Test func idsRecordTheirUTCTimeWithoutICU() throws {
    let date = Date(timeIntervalSince1970: 1_767_225_599)  // 2025-12-31 23:59:59 UTC
    let id = BackupID.make(at: date)
    #expect(id.hasPrefix("backup-20251231T235959Z-"))
    #expect(id.count == "backup-20251231T235959Z-abcd".count && BackupID.isValid(id))
    #expect(BackupID.date(of: id) == date)
    #expect(UTCStamp.basic(Date(timeIntervalSince1970: 0)) == "19700101T000000Z")
    for bad in ["20251331T000000Z", "20250101T246000Z", "2025-01-01T0000Z", "20250101T000000"] {
      #expect(UTCStamp.parseBasic(bad) == nil, "\(bad)")
    }
    #expect(BackupID.date(of: "something-else") == nil)
  }

  /// The manifest's dates: written as JSONEncoder's `.iso8601` writes them, read back (and S3's
  /// dates with fractions and offsets) without Foundation's ICU-backed date parsing.
  @Test func extendedDatesMatchFoundationsISO8601() throws {
    let formatter = ISO8601DateFormatter()
    for seconds in [0, 951_782_400, 1_767_225_599, 1_796_000_000, 4_102_444_800] {
      let date = Date(timeIntervalSince1970: TimeInterval(seconds))
      #expect(UTCStamp.extended(date) == formatter.string(from: date))
      #expect(UTCStamp.parseExtended(UTCStamp.extended(date)) == date)
    }
    #expect(UTCStamp.extended(Date(timeIntervalSince1970: 1.9)) == "1970-01-01T00:00:01Z")
    let reference = Date(timeIntervalSince1970: 1_795_913_600)  // 2026-11-29T00:53:20Z
    for text in [
      "2026-11-29T00:53:20Z", "2026-11-29t00:53:20z", "2026-11-29T02:53:20+02:00", "2026-11-28T21:23:20-0330",
    ] {
      #expect(UTCStamp.parseExtended(text) == reference, "\(text)")
    }
    let fractional = try #require(UTCStamp.parseExtended("2026-11-29T00:53:20.250Z"))
    #expect(abs(fractional.timeIntervalSince(reference) - 0.25) < 1e-6)
    for bad in [
      "2026-11-29T00:53:20", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-29T24:00:00Z",
      "2026-11-29T00:53:20.Z", "2026-11-29T00:53:20+2:00", "2026-11-29 00:53:20Z", "2026-11-29T00:53:20Zx",
      "",
    ] {
      #expect(UTCStamp.parseExtended(bad) == nil, "\(bad)")
    }
    // a manifest's createdAt goes through them both ways
    struct Stamped: Codable, Equatable { var at: Date }
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = UTCStamp.jsonEncoding
    let json = String(decoding: try encoder.encode(Stamped(at: reference)), as: UTF8.self)
    #expect(json == #"{"at":"2026-11-29T00:53:20Z"}"#)
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = UTCStamp.jsonDecoding
    #expect(try decoder.decode(Stamped.self, from: Data(json.utf8)) == Stamped(at: reference))
    #expect(throws: DecodingError.self) {
      try decoder.decode(Stamped.self, from: Data(#"{"at":"yesterday"}"#.utf8))
    }
  }
}
